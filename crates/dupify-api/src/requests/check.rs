//! The checks request types share. Each names the parameter as `prefix + name` is
//! spelled in the body; the caller's own prefix is added by [`super::Rejection::under`].

use serde_json::{Map, Value};

use super::{Rejection, Whole};

/// A string that, when given, is trimmed and must be non-empty and at most `max` characters.
pub fn text(field: &mut Option<String>, name: &str, max: usize) -> Result<(), Rejection> {
    let Some(s) = field.as_mut() else {
        return Ok(());
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(Rejection::invalid(
            name,
            format!("{name} must not be empty"),
        ));
    }
    if t.chars().count() > max {
        return Err(Rejection::invalid(
            name,
            format!("{name} must be at most {max} characters"),
        ));
    }
    if t.len() != s.len() {
        *s = t.to_owned();
    }
    Ok(())
}

/// An integer in `[min, max]`, or `default` when absent.
pub fn whole(
    field: Option<Whole>,
    name: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, Rejection> {
    match field {
        None => Ok(default),
        Some(Whole(n)) if (min..=max).contains(&n) => Ok(n),
        Some(Whole(n)) => Err(Rejection::invalid(
            name,
            format!("{name} must be an integer between {min} and {max}"),
        )
        .detail("value", n)),
    }
}

/// A number in `[min, max]` when given.
pub fn number_in(
    field: Option<f64>,
    name: &str,
    min: f64,
    max: f64,
    message: &str,
) -> Result<(), Rejection> {
    match field {
        Some(n) if !(n.is_finite() && (min..=max).contains(&n)) => {
            Err(Rejection::invalid(name, message).detail("value", n))
        }
        _ => Ok(()),
    }
}

/// A price-like number: finite and ≥ 0 when given.
pub fn non_negative(field: Option<f64>, name: &str) -> Result<(), Rejection> {
    number_in(
        field,
        name,
        0.0,
        f64::MAX,
        &format!("{name} must be a number ≥ 0"),
    )
}

/// A three-letter ISO-4217 code, upper-cased.
pub fn currency(field: &mut Option<String>, name: &str) -> Result<(), Rejection> {
    text(field, name, 3)?;
    if let Some(c) = field.as_mut() {
        if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return Err(Rejection::invalid(
                name,
                "currency must be a three-letter ISO-4217 code such as USD",
            )
            .detail("value", c.clone()));
        }
        c.make_ascii_uppercase();
    }
    Ok(())
}

/// Most bytes of a product's (or a filter's) metadata, as JSON.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// A flat object (string, number, boolean or null values) of at most 8 KB as JSON.
pub fn metadata(field: Option<&Map<String, Value>>, name: &str) -> Result<(), Rejection> {
    let Some(m) = field else {
        return Ok(());
    };
    if let Some((k, _)) = m
        .iter()
        .find(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)))
    {
        return Err(Rejection::invalid(
            format!("{name}.{k}"),
            "metadata must be a flat object: values are strings, numbers, booleans or null",
        ));
    }
    let size = serde_json::to_string(m).map(|s| s.len()).unwrap_or(0);
    if size > MAX_METADATA_BYTES {
        return Err(Rejection::invalid(
            name,
            format!("metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"),
        )
        .detail("size", size));
    }
    Ok(())
}

/// Refuses the first field not in `known` (catalog bodies, where a misspelt field
/// would otherwise be dropped in silence).
pub fn no_unknown(
    unknown: &Map<String, Value>,
    prefix: &str,
    message: impl Fn(&str) -> String,
) -> Result<(), Rejection> {
    match unknown.keys().next() {
        Some(k) => Err(Rejection::invalid(format!("{prefix}{k}"), message(k))),
        None => Ok(()),
    }
}

/// "Exactly one of these forms": the first given is the one used; none given names the
/// first as missing, with the others as alternatives.
pub fn exactly_one(given: &[(&'static str, bool)]) -> Result<&'static str, Rejection> {
    let present: Vec<&'static str> = given.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
    let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    };
    match present.as_slice() {
        [one] => Ok(one),
        [] => Err(Rejection::missing(names[0])
            .with_message(format!("one of {listed} is required"))
            .detail("alternatives", names.clone())),
        [_, second, ..] => Err(Rejection::invalid(
            *second,
            format!("send exactly one of {listed}"),
        )),
    }
}

/// An http(s) URL with a host.
pub fn http_url(field: &mut Option<String>, name: &str, max: usize) -> Result<(), Rejection> {
    text(field, name, max)?;
    if let Some(s) = field.as_ref() {
        match url::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(
                    Rejection::invalid(name, format!("{name} must be an http(s) URL"))
                        .detail("value", s.clone()),
                )
            }
        }
    }
    Ok(())
}
