//! JS values as the core's JSON ([`JsonIn`]): what a JS host's own `JSON.parse` made, read by
//! the core's schema table and record codec exactly as `serde_json::Value` is natively. The
//! npm package's engine (`polar-license-wasm`) reads every answer, option and record through
//! this, so no serde code is compiled into its wasm.

use crate::json::{JsonIn, Num};
use wasm_bindgen::{JsCast, JsValue};

impl JsonIn for JsValue {
    fn member(&self, name: &str) -> Option<JsValue> {
        if !JsonIn::is_object(self) {
            return None;
        }
        let name = JsValue::from_str(name);
        // Own members only: an inherited `constructor` or `toString` is no member of the JSON.
        if !js_sys::Object::has_own(self.unchecked_ref::<js_sys::Object>(), &name) {
            return None;
        }
        js_sys::Reflect::get(self, &name).ok()
    }

    fn is_null(&self) -> bool {
        JsValue::is_null(self) || self.is_undefined()
    }

    fn is_object(&self) -> bool {
        JsValue::is_object(self) && !js_sys::Array::is_array(self)
    }

    fn string(&self) -> Option<String> {
        self.as_string()
    }

    fn number(&self) -> Option<Num> {
        let x = self.as_f64()?;
        // 2^63: every integral f64 below it (and at or above -2^63) is an i64 exactly.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x) {
            Some(Num::Int(x as i64))
        } else {
            Some(Num::Float(x))
        }
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn unsigned(&self) -> Option<u64> {
        // 2^64: every integral f64 at or above 0 and below it is a u64 exactly.
        let x = self.as_f64()?;
        (x.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&x)).then_some(x as u64)
    }

    fn members(&self) -> Option<Vec<(String, JsValue)>> {
        if !JsonIn::is_object(self) {
            return None;
        }
        js_sys::Object::entries(self.unchecked_ref())
            .iter()
            .map(|pair| {
                let pair: js_sys::Array = pair.unchecked_into();
                Some((pair.get(0).as_string()?, pair.get(1)))
            })
            .collect()
    }

    fn items(&self) -> Option<Vec<JsValue>> {
        js_sys::Array::is_array(self).then(|| js_sys::Array::from(self).iter().collect())
    }
}
