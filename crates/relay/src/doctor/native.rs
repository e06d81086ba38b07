//! `polar-license doctor`'s host of the check (issue #78): its calls made now, blocking,
//! through the native relay's agent.

use super::{calls, examine, Answer, Probe, Report, Setup};

/// Runs the check of `setup` against Polar now, blocking (the native relay's agent,
/// `crate::agent`): what `polar-license doctor` prints.
pub fn check(setup: &Setup) -> Report {
    let agent = crate::agent::agent(&setup.base_url);
    let answers: Vec<(Probe, Result<Answer, String>)> = calls(setup)
        .into_iter()
        .map(|call| {
            let answer = match &call.body {
                Some(body) => {
                    let mut req = agent.post(&call.url);
                    for (name, value) in &call.headers {
                        req = req.header(*name, value);
                    }
                    req.send(&body[..])
                }
                None => {
                    let mut req = agent.get(&call.url);
                    for (name, value) in &call.headers {
                        req = req.header(*name, value);
                    }
                    req.call()
                }
            };
            let answer = match answer {
                Ok(mut r) => {
                    let sandbox = r
                        .headers()
                        .get("x-polar-sandbox")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.trim() == "1");
                    let status = r.status().as_u16();
                    r.body_mut()
                        .with_config()
                        .limit(crate::types::MAX_READ_BYTES as u64)
                        .read_to_vec()
                        .map(|body| Answer {
                            status,
                            body,
                            sandbox,
                        })
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            (call.probe, answer)
        })
        .collect();
    examine(setup, &answers)
}
