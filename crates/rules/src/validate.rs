//! Request-body validation with pydantic v2's error shapes (FastAPI's 422). Public for the
//! emulator only: not a stable interface.
//!
//! FastAPI validates the body with `TypeAdapter.validate_python(body,
//! from_attributes=True)`, i.e. pydantic's lax Python mode, collecting every
//! error in model field order. Each entry is `{type, loc, msg, input, ctx?}`.

use uuid::Uuid;

use super::json::{obj, s, J};

/// One pydantic error entry.
#[derive(Debug, Clone, PartialEq)]
pub struct VErr {
    pub typ: &'static str,
    pub loc: Vec<J>,
    pub msg: String,
    pub input: J,
    pub ctx: Option<J>,
}

impl VErr {
    /// An entry of `typ` at `loc`.
    pub fn new(typ: &'static str, loc: Vec<J>, msg: &str, input: &J, ctx: Option<J>) -> VErr {
        VErr {
            typ,
            loc,
            msg: msg.to_string(),
            input: input.clone(),
            ctx,
        }
    }

    pub fn to_j(&self) -> J {
        let mut items = vec![
            ("type", s(self.typ)),
            ("loc", J::Arr(self.loc.clone())),
            ("msg", J::Str(self.msg.clone())),
            ("input", self.input.clone()),
        ];
        if let Some(ctx) = &self.ctx {
            items.push(("ctx", ctx.clone()));
        }
        obj(items)
    }
}

/// The `{"error":"RequestValidationError","detail":[...]}` body.
pub fn error_body(errors: &[VErr]) -> J {
    obj(vec![
        ("error", s("RequestValidationError")),
        ("detail", J::Arr(errors.iter().map(VErr::to_j).collect())),
    ])
}

fn loc(parts: &[&str]) -> Vec<J> {
    parts.iter().map(|p| s(p)).collect()
}

/// The json_invalid entry FastAPI builds from a `JSONDecodeError`.
pub fn json_invalid(msg: &str, pos: usize) -> VErr {
    VErr {
        typ: "json_invalid",
        loc: vec![s("body"), J::Int(pos as i128)],
        msg: "JSON decode error".to_string(),
        input: J::Obj(vec![]),
        ctx: Some(obj(vec![("error", s(msg))])),
    }
}

/// The body is absent (`Content-Length: 0`) or JSON `null`.
pub fn body_missing() -> VErr {
    VErr::new("missing", loc(&["body"]), "Field required", &J::Null, None)
}

/// The body is not an object (or not JSON at all, for a non-JSON content type).
pub fn body_not_object(input: &J) -> VErr {
    VErr::new(
        "model_attributes_type",
        loc(&["body"]),
        "Input should be a valid dictionary or object to extract fields from",
        input,
        None,
    )
}

const NUL_MSG: &str = "Value error, This value contains invalid characters";

fn nul_error(field: &str, input: &J) -> VErr {
    VErr::new(
        "value_error",
        loc(&["body", field]),
        NUL_MSG,
        input,
        Some(obj(vec![("error", J::Obj(vec![]))])),
    )
}

fn contains_nul(v: &J) -> bool {
    match v {
        J::Str(text) => text.contains('\0'),
        J::Arr(items) => items.iter().any(contains_nul),
        J::Obj(items) => items
            .iter()
            .any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Field access on the body object.
struct Body<'a> {
    whole: &'a J,
    items: &'a [(String, J)],
    errors: Vec<VErr>,
}

impl<'a> Body<'a> {
    /// The request `build` makes of the fields read, when every one was read without an error;
    /// else the errors.
    fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Vec<VErr>> {
        match self.errors.is_empty() {
            true => build().ok_or(self.errors),
            false => Err(self.errors),
        }
    }

    fn field(&self, name: &str) -> Option<&'a J> {
        self.items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn missing(&mut self, name: &str) {
        let whole = self.whole.clone();
        self.errors.push(VErr::new(
            "missing",
            loc(&["body", name]),
            "Field required",
            &whole,
            None,
        ));
    }

    /// A required `str` field.
    fn string(&mut self, name: &str) -> Option<String> {
        match self.field(name) {
            None => {
                self.missing(name);
                None
            }
            Some(J::Str(text)) => {
                if text.contains('\0') {
                    self.errors.push(nul_error(name, &J::Str(text.clone())));
                    None
                } else {
                    Some(text.clone())
                }
            }
            Some(other) => {
                self.errors.push(VErr::new(
                    "string_type",
                    loc(&["body", name]),
                    "Input should be a valid string",
                    other,
                    None,
                ));
                None
            }
        }
    }

    /// A `UUID4` field (`optional` = `UUID4 | None = None`). `Err(())` marks an error.
    fn uuid4(&mut self, name: &str, optional: bool) -> Result<Option<Uuid>, ()> {
        let value = match self.field(name) {
            None if optional => return Ok(None),
            None => {
                self.missing(name);
                return Err(());
            }
            Some(J::Null) if optional => return Ok(None),
            Some(v) => v,
        };
        let text = match value {
            J::Str(text) => text,
            other => {
                self.errors.push(VErr::new(
                    "uuid_type",
                    loc(&["body", name]),
                    "UUID input should be a string, bytes or UUID object",
                    other,
                    None,
                ));
                return Err(());
            }
        };
        if let Some(problem) = uuid_error(text) {
            self.errors.push(VErr::new(
                "uuid_parsing",
                loc(&["body", name]),
                &format!("Input should be a valid UUID, {problem}"),
                value,
                Some(obj(vec![("error", J::Str(problem))])),
            ));
            return Err(());
        }
        let id = Uuid::parse_str(text).map_err(|_| ())?;
        if id.get_version_num() != 4 || id.get_variant() != uuid::Variant::RFC4122 {
            self.errors.push(VErr::new(
                "uuid_version",
                loc(&["body", name]),
                "UUID version 4 expected",
                value,
                Some(obj(vec![("expected_version", J::Int(4))])),
            ));
            return Err(());
        }
        Ok(Some(id))
    }

    /// `int | None` with `ge=0` (`increment_usage`). Returns `Err(())` on error.
    fn non_negative_int(&mut self, name: &str) -> Result<Option<i128>, ()> {
        let value = match self.field(name) {
            None | Some(J::Null) => return Ok(None),
            Some(v) => v,
        };
        let place = loc(&["body", name]);
        let parsed = match lax_int(value) {
            Ok(v) => v,
            Err((typ, msg)) => {
                self.errors.push(VErr::new(typ, place, msg, value, None));
                return Err(());
            }
        };
        if parsed < 0 {
            self.errors.push(VErr::new(
                "greater_than_equal",
                place,
                "Input should be greater than or equal to 0",
                value,
                Some(obj(vec![("ge", J::Int(0))])),
            ));
            return Err(());
        }
        Ok(Some(parsed))
    }

    /// A metadata dict (`conditions` / `meta`), default `{}`.
    fn metadata(&mut self, name: &str) -> Option<Vec<(String, J)>> {
        let value = match self.field(name) {
            None => return Some(Vec::new()),
            Some(v) => v,
        };
        let items = match value {
            J::Obj(items) => items,
            other => {
                self.errors.push(VErr::new(
                    "dict_type",
                    loc(&["body", name]),
                    "Input should be a valid dictionary",
                    other,
                    None,
                ));
                return None;
            }
        };
        let mut errors = Vec::new();
        let mut out: Vec<(String, J)> = Vec::new();
        for (key, item) in items {
            let key_len = key.chars().count();
            let key_loc = || vec![s("body"), s(name), J::Str(key.clone()), s("[key]")];
            let mut ok = true;
            if key_len < 1 {
                ok = false;
                errors.push(VErr::new(
                    "string_too_short",
                    key_loc(),
                    "String should have at least 1 character",
                    &J::Str(key.clone()),
                    Some(obj(vec![("min_length", J::Int(1))])),
                ));
            } else if key_len > 40 {
                ok = false;
                errors.push(VErr::new(
                    "string_too_long",
                    key_loc(),
                    "String should have at most 40 characters",
                    &J::Str(key.clone()),
                    Some(obj(vec![("max_length", J::Int(40))])),
                ));
            }
            match metadata_value(item) {
                Ok(v) => {
                    if ok {
                        out.push((key.clone(), v));
                    }
                }
                Err(member_errors) => {
                    for (tag, typ, msg, ctx) in member_errors {
                        errors.push(VErr::new(
                            typ,
                            vec![s("body"), s(name), J::Str(key.clone()), s(tag)],
                            msg,
                            item,
                            ctx,
                        ));
                    }
                }
            }
        }
        if !errors.is_empty() {
            self.errors.extend(errors);
            return None;
        }
        if out.len() > 50 {
            self.errors.push(VErr::new(
                "too_long",
                loc(&["body", name]),
                &format!(
                    "Dictionary should have at most 50 items after validation, not {}",
                    out.len()
                ),
                value,
                Some(obj(vec![
                    ("field_type", s("Dictionary")),
                    ("max_length", J::Int(50)),
                    ("actual_length", J::Int(out.len() as i128)),
                ])),
            ));
            return None;
        }
        if contains_nul(value) {
            self.errors.push(nul_error(name, value));
            return None;
        }
        Some(out)
    }
}

type MemberError = (&'static str, &'static str, &'static str, Option<J>);

/// `Annotated[str, 1..=500] | int | float | bool` in pydantic's smart union mode.
fn metadata_value(v: &J) -> Result<J, Vec<MemberError>> {
    match v {
        J::Int(_) | J::BigInt(_) | J::Float(_) | J::Bool(_) => Ok(v.clone()),
        J::Str(text) => {
            let n = text.chars().count();
            if (1..=500).contains(&n) {
                return Ok(v.clone());
            }
            // Lax pass, in member order.
            if let Ok(i) = str_as_int(text) {
                return Ok(J::Int(i));
            }
            if let Some(f) = str_as_float(text) {
                return Ok(J::Float(f));
            }
            if let Some(b) = str_as_bool(text) {
                return Ok(J::Bool(b));
            }
            let str_error: MemberError = if n < 1 {
                (
                    "constrained-str",
                    "string_too_short",
                    "String should have at least 1 character",
                    Some(obj(vec![("min_length", J::Int(1))])),
                )
            } else {
                (
                    "constrained-str",
                    "string_too_long",
                    "String should have at most 500 characters",
                    Some(obj(vec![("max_length", J::Int(500))])),
                )
            };
            Err(vec![
                str_error,
                (
                    "int",
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                    None,
                ),
                (
                    "float",
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                    None,
                ),
                (
                    "bool",
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                    None,
                ),
            ])
        }
        _ => Err(vec![
            (
                "constrained-str",
                "string_type",
                "Input should be a valid string",
                None,
            ),
            ("int", "int_type", "Input should be a valid integer", None),
            (
                "float",
                "float_type",
                "Input should be a valid number",
                None,
            ),
            ("bool", "bool_type", "Input should be a valid boolean", None),
        ]),
    }
}

/// pydantic's lax `int` validation of a Python value.
fn lax_int(v: &J) -> Result<i128, (&'static str, &'static str)> {
    match v {
        J::Int(i) => Ok(*i),
        J::BigInt(text) => Ok(if text.starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        }),
        J::Bool(b) => Ok(i128::from(*b)),
        J::Float(f) => {
            if !f.is_finite() {
                Err(("finite_number", "Input should be a finite number"))
            } else if f.fract() != 0.0 {
                Err((
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                ))
            } else if f.abs() >= 1.7e38 {
                Ok(if *f < 0.0 { i128::MIN } else { i128::MAX })
            } else {
                Ok(*f as i128)
            }
        }
        J::Str(text) => str_as_int(text),
        _ => Err(("int_type", "Input should be a valid integer")),
    }
}

fn str_as_int(text: &str) -> Result<i128, (&'static str, &'static str)> {
    let t = text.trim();
    if t.len() > 4300 {
        return Err((
            "int_parsing_size",
            "Unable to parse input string as an integer, exceeded maximum size",
        ));
    }
    let parse = |v: &str| -> Option<i128> {
        let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match v.parse::<i128>() {
            Ok(i) => Some(i),
            Err(_) => Some(if v.starts_with('-') {
                i128::MIN
            } else {
                i128::MAX
            }),
        }
    };
    if let Some(i) = parse(t) {
        return Ok(i);
    }
    if let Some((whole, frac)) = t.split_once('.') {
        if frac.bytes().all(|b| b == b'0') {
            if let Some(i) = parse(whole) {
                return Ok(i);
            }
        }
    }
    Err((
        "int_parsing",
        "Input should be a valid integer, unable to parse string as an integer",
    ))
}

fn str_as_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

fn str_as_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        _ => None,
    }
}

/// `LicenseKeyValidate`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateReq {
    pub key: String,
    pub organization_id: Uuid,
    pub activation_id: Option<Uuid>,
    pub benefit_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub increment_usage: Option<i128>,
    pub conditions: Vec<(String, J)>,
}

/// `LicenseKeyActivate`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivateReq {
    pub key: String,
    pub organization_id: Uuid,
    pub label: String,
    pub conditions: Vec<(String, J)>,
    pub meta: Vec<(String, J)>,
}

/// `LicenseKeyDeactivate`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeactivateReq {
    pub key: String,
    pub organization_id: Uuid,
    pub activation_id: Uuid,
}

fn start(body: &J) -> Result<Body<'_>, Vec<VErr>> {
    match body {
        J::Obj(items) => Ok(Body {
            whole: body,
            items,
            errors: Vec::new(),
        }),
        J::Null => Err(vec![body_missing()]),
        other => Err(vec![body_not_object(other)]),
    }
}

/// Validates a `LicenseKeyValidate` body.
pub fn validate_req(body: &J) -> Result<ValidateReq, Vec<VErr>> {
    let mut b = start(body)?;
    let key = b.string("key");
    let organization_id = b.uuid4("organization_id", false);
    let activation_id = b.uuid4("activation_id", true);
    let benefit_id = b.uuid4("benefit_id", true);
    let customer_id = b.uuid4("customer_id", true);
    let increment_usage = b.non_negative_int("increment_usage");
    let conditions = b.metadata("conditions");
    b.finish(|| {
        Some(ValidateReq {
            key: key?,
            organization_id: organization_id.ok().flatten()?,
            activation_id: activation_id.ok()?,
            benefit_id: benefit_id.ok()?,
            customer_id: customer_id.ok()?,
            increment_usage: increment_usage.ok()?,
            conditions: conditions?,
        })
    })
}

/// Validates a `LicenseKeyActivate` body.
pub fn activate_req(body: &J) -> Result<ActivateReq, Vec<VErr>> {
    let mut b = start(body)?;
    let key = b.string("key");
    let organization_id = b.uuid4("organization_id", false);
    let label = b.string("label");
    let conditions = b.metadata("conditions");
    let meta = b.metadata("meta");
    b.finish(|| {
        Some(ActivateReq {
            key: key?,
            organization_id: organization_id.ok().flatten()?,
            label: label?,
            conditions: conditions?,
            meta: meta?,
        })
    })
}

/// Validates a `LicenseKeyDeactivate` body.
pub fn deactivate_req(body: &J) -> Result<DeactivateReq, Vec<VErr>> {
    let mut b = start(body)?;
    let key = b.string("key");
    let organization_id = b.uuid4("organization_id", false);
    let activation_id = b.uuid4("activation_id", false);
    b.finish(|| {
        Some(DeactivateReq {
            key: key?,
            organization_id: organization_id.ok().flatten()?,
            activation_id: activation_id.ok().flatten()?,
        })
    })
}

/// A path parameter typed `UUID4` that failed (for `/v1/license-keys/{id}`).
pub fn path_uuid_error(name: &str, value: &str) -> Option<VErr> {
    uuid_error_at("path", name, value)
}

/// A query parameter typed `UUID4` that failed (`GET /v1/license-keys?organization_id=…`).
pub fn query_uuid_error(name: &str, value: &str) -> Option<VErr> {
    uuid_error_at("query", name, value)
}

/// A query parameter typed `int` with `gt=0` (`page`, `limit`) that failed: pydantic's
/// `int_parsing` or `greater_than`.
pub fn query_positive_int(name: &str, value: &str) -> Result<u64, Box<VErr>> {
    let input = J::Str(value.to_string());
    let trimmed = value.trim();
    let parsed = trimmed
        .strip_prefix('+')
        .unwrap_or(trimmed)
        .parse::<i128>()
        .ok()
        .filter(|_| !trimmed.is_empty());
    match parsed {
        None => Err(Box::new(VErr::new(
            "int_parsing",
            loc(&["query", name]),
            "Input should be a valid integer, unable to parse string as an integer",
            &input,
            None,
        ))),
        Some(n) if n <= 0 => Err(Box::new(VErr::new(
            "greater_than",
            loc(&["query", name]),
            "Input should be greater than 0",
            &input,
            Some(obj(vec![("gt", J::Int(0))])),
        ))),
        Some(n) => Ok(u64::try_from(n).unwrap_or(u64::MAX)),
    }
}

/// A `status` query value that is not a `LicenseKeyStatus`: pydantic's `enum`.
pub fn query_status_error(value: &str) -> Option<VErr> {
    if matches!(value, "granted" | "revoked" | "disabled") {
        return None;
    }
    let expected = "'granted', 'revoked' or 'disabled'";
    Some(VErr::new(
        "enum",
        loc(&["query", "status"]),
        &format!("Input should be {expected}"),
        &J::Str(value.to_string()),
        Some(obj(vec![("expected", s(expected))])),
    ))
}

fn uuid_error_at(place: &str, name: &str, value: &str) -> Option<VErr> {
    let input = J::Str(value.to_string());
    if let Some(problem) = uuid_error(value) {
        return Some(VErr::new(
            "uuid_parsing",
            loc(&[place, name]),
            &format!("Input should be a valid UUID, {problem}"),
            &input,
            Some(obj(vec![("error", J::Str(problem))])),
        ));
    }
    match Uuid::parse_str(value) {
        Ok(id) if id.get_version_num() != 4 || id.get_variant() != uuid::Variant::RFC4122 => {
            Some(VErr::new(
                "uuid_version",
                loc(&[place, name]),
                "UUID version 4 expected",
                &input,
                Some(obj(vec![("expected_version", J::Int(4))])),
            ))
        }
        _ => None,
    }
}

/// Why a string is not a UUID, worded as pydantic-core reports it: the `uuid`
/// crate's message, with the character index counted from 1.
pub fn uuid_error(text: &str) -> Option<String> {
    match Uuid::parse_str(text) {
        Ok(_) => None,
        Err(e) => {
            let msg = e.to_string();
            const PREFIX: &str = "invalid character: found `";
            if msg.starts_with(PREFIX) {
                if let Some((head, index)) = msg.rsplit_once(" at ") {
                    if let Ok(i) = index.trim().parse::<usize>() {
                        return Some(format!("{head} at {}", i + 1));
                    }
                }
            }
            Some(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::json::loads;
    use super::*;

    fn errors_of(body: &str) -> String {
        let body = loads(body).unwrap_or(J::Null);
        match validate_req(&body) {
            Ok(_) => "ok".to_string(),
            Err(e) => error_body(&e).to_json().unwrap_or_default(),
        }
    }

    #[test]
    fn missing_field_echoes_the_body() {
        assert_eq!(
            errors_of(r#"{"key":"K"}"#),
            r#"{"error":"RequestValidationError","detail":[{"type":"missing","loc":["body","organization_id"],"msg":"Field required","input":{"key":"K"}}]}"#
        );
    }

    #[test]
    fn lax_increment_usage() {
        let org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
        for ok in ["5", "\"5\"", "5.0", "\" 5 \"", "true", "null"] {
            let body = format!(r#"{{"key":"K","organization_id":"{org}","increment_usage":{ok}}}"#);
            assert_eq!(errors_of(&body), "ok", "{ok}");
        }
        let body = format!(r#"{{"key":"K","organization_id":"{org}","increment_usage":1.5}}"#);
        assert!(errors_of(&body).contains("int_from_float"));
    }

    #[test]
    fn uuid_errors_like_pydantic() {
        assert_eq!(
            uuid_error("not-a-uuid").as_deref(),
            Some("invalid character: found `n` at 1")
        );
        assert_eq!(uuid_error("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"), None);
    }
}
