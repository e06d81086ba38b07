//! `Options::state` (issue #65): the keys and activations kept in a file across a restart,
//! written atomically; a torn or foreign file refused with a clear error, never a panic and
//! never silently replaced. Over loopback HTTP, as an app talks to it.

use polar_license_emulator::{Emulator, KeyUpdate, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_testkit::http::{agent, HttpAnswer};
use polar_license_testkit::{emulator_kept, ScratchDir};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const ACTIVATE: &str = "/v1/customer-portal/license-keys/activate";
const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";

fn post(em: &Emulator, path: &str, body: &Value) -> HttpAnswer {
    let response = agent(Duration::from_secs(10))
        .post(format!("{}{path}", em.url()))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("the emulator answers");
    HttpAnswer::read(response)
}

fn kept(path: &Path) -> Emulator {
    emulator_kept(Seed::demo(), path)
}

/// The demo key activated on `em` as "box": the activation's answer, a 200.
fn activate_box(em: &Emulator) -> HttpAnswer {
    let act = post(
        em,
        ACTIVATE,
        &json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "label": "box"}),
    );
    assert_eq!(act.status, 200, "{}", act.text());
    act
}

#[test]
fn an_activation_survives_a_restart_with_a_state_file() {
    let dir = ScratchDir::new("emulator-state-restart");
    let file = dir.join("polar.json");
    let em = kept(&file);
    let act = activate_box(&em);
    let id = act.json()["id"].as_str().unwrap().to_string();
    em.stop();

    let again = kept(&file);
    let ids: Vec<_> = again
        .activations(DEMO_KEY)
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    let check = post(
        &again,
        VALIDATE,
        &json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": id}),
    );
    assert_eq!(check.status, 200, "{}", check.text());
    assert_eq!(check.json()["activation"]["label"], "box");
    // The validation counted before the restart is kept too.
    assert_eq!(check.json()["validations"], 1, "{}", check.text());
    again.stop();

    // Without the file, a restart forgets (the default).
    let plain = Emulator::start(Seed::demo(), Options::default()).unwrap();
    assert!(plain.activations(DEMO_KEY).is_empty());
    // And no temporary file is left beside the state file.
    let names: Vec<_> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["polar.json".to_string()]);
}

/// The demo key's `usage` as the state file on disk has it now.
fn saved_usage(path: &Path) -> Value {
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the state file"))
            .expect("JSON");
    saved["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["key"] == DEMO_KEY)
        .map(|k| k["usage"].clone())
        .expect("the demo key")
}

/// A change made through the in-process API (a test's `update_key`, as the suites set a key's
/// status or usage) is saved at once, as one over HTTP is: the file has it while the emulator
/// runs, so a process killed after it (no stop, no drop) keeps it.
#[test]
fn a_change_through_the_api_is_saved_at_once() {
    let dir = ScratchDir::new("emulator-state-api");
    let file = dir.join("polar.json");
    let em = kept(&file);
    assert_ne!(saved_usage(&file), json!(7));
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            usage: Some(7),
            ..KeyUpdate::default()
        }
    ));
    assert_eq!(saved_usage(&file), json!(7));
    em.stop();
}

#[test]
fn a_torn_or_garbage_state_file_is_a_clear_error_and_is_left_as_it_was() {
    let dir = ScratchDir::new("emulator-state-torn");
    let file = dir.join("polar.json");
    let em = kept(&file);
    activate_box(&em);
    em.stop();
    let whole = std::fs::read(&file).unwrap();
    for bad in [
        whole[..whole.len() / 2].to_vec(),
        b"garbage".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"{\"format\":\"something-else/9\",\"keys\":[],\"activations\":[]}".to_vec(),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let err = Emulator::start(
            Seed::demo(),
            Options {
                state: Some(file.clone()),
                ..Options::default()
            },
        )
        .expect_err("a bad state file is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        let said = err.to_string();
        assert!(
            said.contains("polar.json") && said.contains("cannot be read"),
            "{said}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bad,
            "the file is left as it was"
        );
    }
}
