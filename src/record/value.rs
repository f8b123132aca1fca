//! Values: how one cell or JSON value becomes a Customer.io attribute value of the wanted type.
//!
//! Conversions return a message that already names the column and the fix, so the mapper only
//! has to attach the column to it.

use std::fmt;
use std::io;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Number, Value};

use super::columns::type_flag;
use super::exported::{grouped_number, list, without_apostrophe};
use super::time::{self, TimeFormat, TimestampError};

/// A column's type, as `--type COLUMN=TYPE` spells it.
// A tag of its own, for the reason `Role` has one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueType {
    String,
    Number,
    Bool,
    /// Sent as Unix seconds; read as the format says.
    Timestamp(TimeFormat),
    Json,
    /// Text split on the separator (`list`, `list:;`): a JSON array of strings.
    List(char),
}

impl ValueType {
    /// `timestamp`, read in the default forms.
    pub const TIMESTAMP: ValueType = ValueType::Timestamp(TimeFormat::Auto);
}

/// `string`, `number`, `bool`, `json`, `timestamp`, `timestamp:ms`, `timestamp:FORMAT`,
/// `list`, `list:SEPARATOR`.
impl FromStr for ValueType {
    type Err = String;

    fn from_str(s: &str) -> Result<ValueType, String> {
        Ok(match s {
            "string" => ValueType::String,
            "number" => ValueType::Number,
            "bool" => ValueType::Bool,
            "json" => ValueType::Json,
            "timestamp" => ValueType::TIMESTAMP,
            "list" => ValueType::List(','),
            _ => {
                if let Some(format) = s.strip_prefix("timestamp:") {
                    return TimeFormat::parse(format).map(ValueType::Timestamp);
                }
                if let Some(sep) = s.strip_prefix("list:") {
                    let mut chars = sep.chars();
                    return match (chars.next(), chars.next()) {
                        (Some(c), None) => Ok(ValueType::List(c)),
                        _ => Err(format!(
                            "list:{sep}: the separator is one character, e.g. list:;"
                        )),
                    };
                }
                return Err(format!(
                    "unknown type {s:?}; use string, number, bool, timestamp, timestamp:ms, \
                     timestamp:FORMAT (e.g. timestamp:%m/%d/%Y), json, list or list:SEPARATOR"
                ));
            }
        })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::String => f.write_str("string"),
            ValueType::Number => f.write_str("number"),
            ValueType::Bool => f.write_str("bool"),
            ValueType::Timestamp(format) => format.fmt(f),
            ValueType::Json => f.write_str("json"),
            ValueType::List(',') => f.write_str("list"),
            ValueType::List(sep) => write!(f, "list:{sep}"),
        }
    }
}

/// How the input writes its values, for every column: the zone of times without an offset
/// (`--timezone`), the decimal comma (`--decimal-comma`) and the spreadsheet apostrophe
/// (`--strip-apostrophe`).
#[derive(Debug, Clone, PartialEq)]
pub struct Conventions {
    pub zone: TimeZone,
    pub decimal_comma: bool,
    pub strip_apostrophe: bool,
}

impl Default for Conventions {
    fn default() -> Conventions {
        Conventions {
            zone: TimeZone::UTC,
            decimal_comma: false,
            strip_apostrophe: false,
        }
    }
}

impl Conventions {
    /// A cell without its spreadsheet apostrophe, when `--strip-apostrophe` asks for that.
    #[inline]
    pub(crate) fn unquoted<'a>(&self, s: &'a str) -> &'a str {
        if self.strip_apostrophe {
            without_apostrophe(s)
        } else {
            s
        }
    }
}

/// Integral floats inside ±2^53 are sent as integers: they convert exactly, and "1e3" or "2.0"
/// is then the same number Customer.io would get from "1000" or "2".
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// A column's type as the mapper applies it, and what a message says about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Typed {
    pub ty: ValueType,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `--type col=ty`: the message repeats the flag, which may be the mistake.
    Flag,
    /// A default by column name (`created_at`): the message says how to opt out.
    Default,
    /// The column's role fixes the type (an event's `timestamp`): nothing to add.
    Fixed,
}

impl Typed {
    pub(crate) fn new(ty: ValueType, origin: Origin) -> Typed {
        Typed { ty, origin }
    }

    fn hint(&self, column: &str) -> String {
        match self.origin {
            Origin::Flag => format!(" ({})", type_flag(column, &self.ty)),
            // As text, an unsubscribed "yes" would leave the person subscribed: no way out.
            Origin::Default if self.ty == ValueType::Bool => format!(
                " ({column} is read as a bool by default, as Customer.io counts only true; fix \
                 the value, or leave the cell empty)"
            ),
            Origin::Default => format!(
                " ({column} is read as a {} by default; {} sends it as text)",
                self.ty,
                type_flag(column, "string")
            ),
            Origin::Fixed => String::new(),
        }
    }

    /// The format a timestamp column is read with; None for other types.
    #[inline]
    pub(crate) fn time_format(&self) -> Option<&TimeFormat> {
        match &self.ty {
            ValueType::Timestamp(format) => Some(format),
            _ => None,
        }
    }
}

/// A converted value, borrowed from the row where it can be: only building an operation copies
/// it into a `Value`, so checking a row allocates nothing for its text cells.
// A tag of its own: sharing `Value`'s made every move of a cell copy bytes 1 to 31 unaligned,
// which stalled the dry run's hot loop on store forwarding (about a tenth of its time).
#[derive(Debug, Clone, PartialEq)]
#[repr(u64)]
pub(crate) enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
    Owned(Value),
}

impl Cell<'_> {
    pub(crate) fn into_value(self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.to_owned()),
            Cell::Json(v) => v.clone(),
            Cell::Owned(v) => v,
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Cell::Text(_) => None,
            Cell::Json(v) => v.as_i64(),
            Cell::Owned(v) => v.as_i64(),
        }
    }

    /// The size Customer.io's limits measure (see [`value_size`]).
    pub(crate) fn size(&self) -> usize {
        match self {
            Cell::Text(s) => s.len(),
            Cell::Json(v) => value_size(v),
            Cell::Owned(v) => value_size(v),
        }
    }

    /// At least the value's length as JSON, and at least [`Cell::size`]; exact only for arrays
    /// and objects, which are measured.
    pub(crate) fn json_bound(&self) -> usize {
        match self {
            Cell::Text(s) => str_bound(s),
            Cell::Json(v) => value_bound(v),
            Cell::Owned(v) => value_bound(v),
        }
    }
}

/// The longest a number serialises to: `-2.2250738585072014e-308` is 24 bytes, an i64 20.
const NUMBER_BOUND: usize = 32;

/// At least a string's length as JSON: escaping makes a byte 6 at most (`\u001f`), plus quotes.
pub(crate) fn str_bound(s: &str) -> usize {
    6 * s.len() + 2
}

fn value_bound(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => NUMBER_BOUND,
        Value::String(s) => str_bound(s),
        Value::Array(_) | Value::Object(_) => json_size(v),
    }
}

/// Converts a CSV cell (or a JSON string) to `typed`. `Ok(None)` means empty: the caller applies
/// the empty-cell policy. Strings are kept as they are; typed values are trimmed first, so a
/// whitespace-only cell in a typed column counts as empty.
// Inlined so that a text cell, the usual kind, is never moved through a returned enum.
#[inline(always)]
pub(crate) fn convert_str<'a>(
    typed: &Typed,
    conv: &Conventions,
    column: &str,
    s: &'a str,
) -> Result<Option<Cell<'a>>, String> {
    if typed.ty == ValueType::String {
        return Ok(text(conv.unquoted(s)));
    }
    convert_typed(typed, conv, column, s)
}

/// A cell kept as text; None when it is empty.
#[inline(always)]
pub(crate) fn text(s: &str) -> Option<Cell<'_>> {
    (!s.is_empty()).then_some(Cell::Text(s))
}

#[inline(never)]
fn convert_typed<'a>(
    typed: &Typed,
    conv: &Conventions,
    column: &str,
    s: &'a str,
) -> Result<Option<Cell<'a>>, String> {
    let t = conv.unquoted(s.trim());
    if t.is_empty() {
        return Ok(None);
    }
    let bad = |what: &str| {
        format!(
            "column {column:?}: {} is not {what}{}",
            quote(t),
            typed.hint(column)
        )
    };
    match &typed.ty {
        ValueType::String => Ok(Some(Cell::Text(s))),
        ValueType::Number => number(t, conv.decimal_comma)
            .map(|n| Some(Cell::Owned(Value::Number(n))))
            .ok_or_else(|| bad(not_a_number(t, conv.decimal_comma))),
        ValueType::Bool => parse_bool(t)
            .map(|b| Some(Cell::Owned(Value::Bool(b))))
            .ok_or_else(|| bad("a bool (true/false, yes/no, 1/0, t/f, y/n)")),
        ValueType::Timestamp(format) => match format.read(t, &conv.zone) {
            Ok(secs) if time::SENT.contains(&secs) || written_date(typed, t) => {
                Ok(Some(Cell::Owned(secs.into())))
            }
            Ok(secs) => Err(time::out_of_range(column, t, secs, format)),
            Err(TimestampError::Milliseconds) => Err(milliseconds(column, t)),
            Err(TimestampError::Invalid) if *format == TimeFormat::Auto => Err(bad(&format!(
                "{}{}",
                format.expected(),
                time::format_advice(column, t)
            ))),
            Err(TimestampError::Invalid) => Err(bad(&format!(
                "{}{}",
                format.expected(),
                time::readers_advice(column, t).unwrap_or_default()
            ))),
        },
        ValueType::Json => match serde_json::from_str::<Value>(t) {
            Ok(Value::Null) => Ok(None),
            Ok(v) => Ok(Some(Cell::Owned(v))),
            Err(e) => Err(format!(
                "column {column:?}: not valid JSON ({e}){}",
                typed.hint(column)
            )),
        },
        ValueType::List(separator) => Ok(list(t, *separator).map(Cell::Owned)),
    }
}

/// A number cell: plain (`1853.93`, `1e3`), else as exports group it (`1,853.93`), or with
/// a decimal comma when `decimal_comma` (where a plain `1.5` is no number: the dot groups).
fn number(t: &str, decimal_comma: bool) -> Option<Number> {
    if decimal_comma {
        // Without a dot or a comma, `1e3` is plain; `1 853` is grouped.
        if !t.contains(['.', ',']) {
            return parse_number(t).or_else(|| grouped_number(t, true));
        }
        return grouped_number(t, true);
    }
    parse_number(t).or_else(|| grouped_number(t, false))
}

/// What a number cell that is none should be, with the flag it may need: a decimal comma
/// (`0,34`) without `--decimal-comma`, a decimal point (`1.5`) with it.
fn not_a_number(t: &str, decimal_comma: bool) -> &'static str {
    let decimal = |point: char| {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let t = t.strip_prefix('-').unwrap_or(t);
        t.split_once(point)
            .is_some_and(|(w, f)| digits(w) && digits(f))
    };
    if !decimal_comma && decimal(',') {
        "a number (a decimal comma? pass --decimal-comma)"
    } else if decimal_comma && decimal('.') {
        "a number (with --decimal-comma, a dot groups thousands: 1.853,93)"
    } else {
        "a number"
    }
}

/// Converts an NDJSON value. `typed` is None when the user gave no type for the key: values
/// then pass through as they are. `Ok(None)` means empty (null, or an empty string).
pub(crate) fn convert_json<'a>(
    typed: Option<&Typed>,
    conv: &Conventions,
    column: &str,
    v: &'a Value,
) -> Result<Option<Cell<'a>>, String> {
    let Some(typed) = typed else {
        return Ok(match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if conv.strip_apostrophe => Some(Cell::Text(conv.unquoted(s))),
            v => Some(Cell::Json(v)),
        });
    };
    let contradicts = || {
        format!(
            "column {column:?}: {} is not a {}{}",
            json_kind(v),
            typed.ty,
            typed.hint(column)
        )
    };
    match (&typed.ty, v) {
        (_, Value::Null) => Ok(None),
        (_, Value::String(s)) => convert_str(typed, conv, column, s),
        (ValueType::String, Value::Number(n)) => Ok(Some(Cell::Owned(n.to_string().into()))),
        (ValueType::String, Value::Bool(b)) => Ok(Some(Cell::Owned(b.to_string().into()))),
        (ValueType::Number | ValueType::Json, Value::Number(_)) => Ok(Some(Cell::Json(v))),
        (ValueType::Bool | ValueType::Json, Value::Bool(_)) => Ok(Some(Cell::Json(v))),
        // 1 and 0 are bools in a cell, so they are in JSON too.
        (ValueType::Bool, Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Some(Cell::Owned(Value::Bool(false)))),
            Some(1) => Ok(Some(Cell::Owned(Value::Bool(true)))),
            _ => Err(contradicts()),
        },
        (ValueType::Timestamp(TimeFormat::Auto), Value::Number(n)) => {
            json_seconds(column, n).map(|s| Some(Cell::Owned(s)))
        }
        // Milliseconds, or digits a format reads (20230412 as %Y%m%d): read as the cell is.
        (ValueType::Timestamp(_), Value::Number(n)) => {
            convert_typed(typed, conv, column, &n.to_string())
                .map(|c| c.map(|c| Cell::Owned(c.into_value())))
        }
        (ValueType::Json, Value::Array(_) | Value::Object(_)) => Ok(Some(Cell::Json(v))),
        (ValueType::List(_), Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok((!items.is_empty()).then_some(Cell::Json(v)))
        }
        _ => Err(contradicts()),
    }
}

/// A date written as a date in a column of the user's `--type` (a 1965 birthday, a
/// 9999-12-31 "never"): sent as the seconds it is. The range holds Customer.io's own times
/// (created_at, an event's) and bare numbers, where it is most likely milliseconds or 0 left in.
#[cold]
fn written_date(typed: &Typed, t: &str) -> bool {
    typed.origin == Origin::Flag && !time::bare_number(t)
}

/// A JSON number as Unix seconds (fractions are dropped: Customer.io takes whole seconds).
pub(crate) fn json_seconds(column: &str, n: &Number) -> Result<Value, String> {
    let secs = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Some(i),
        // Finite and below 10^15, so the cast neither saturates nor loses whole seconds.
        (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Some(f.trunc() as i64),
        _ => None,
    };
    match secs {
        Some(s) if time::SENT.contains(&s) => Ok(s.into()),
        Some(s) if Timestamp::from_second(s).is_ok() => Err(time::out_of_range(
            column,
            &n.to_string(),
            s,
            &TimeFormat::Auto,
        )),
        Some(s) if s > 0 => Err(milliseconds(column, &n.to_string())),
        _ => Err(format!(
            "column {column:?}: {n} is out of range for a timestamp (Unix seconds)"
        )),
    }
}

fn milliseconds(column: &str, shown: &str) -> String {
    format!(
        "column {column:?}: {shown} looks like milliseconds; Customer.io takes Unix seconds \
         (divide by 1,000, or pass {})",
        type_flag(column, "timestamp:ms")
    )
}

/// An integer if the value is integral (so "1e3" is 1000), else a finite float.
// Inlined into the typed-cell conversion, where a call of its own cost the dry run 3%.
#[inline(always)]
pub(crate) fn parse_number(s: &str) -> Option<Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(u.into());
    }
    let f = s.parse::<f64>().ok().filter(|f| f.is_finite())?;
    if f.fract() == 0.0 && f.abs() < MAX_EXACT_F64 {
        // Exact: integral and inside ±2^53.
        Some((f as i64).into())
    } else {
        Number::from_f64(f)
    }
}

/// true/false, yes/no, 1/0, t/f, y/n in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "yes", "1", "t", "y"];
    const FALSE: [&str; 5] = ["false", "no", "0", "f", "n"];
    if TRUE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value quoted for a message, cut to a readable length.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{:?}…", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// Bytes as a message shows them: 1,204.
pub(crate) fn thousands(n: usize) -> String {
    indicatif::HumanCount(n as u64).to_string()
}

/// The size Customer.io's limits measure: a string's own bytes, else the serialised JSON.
pub(crate) fn value_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        v => json_size(v),
    }
}

/// Serialised JSON length, without building the string.
pub(crate) fn json_size<T: serde::Serialize + ?Sized>(v: &T) -> usize {
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and a Value/Map always serialises.
    let _ = serde_json::to_writer(&mut counter, v);
    counter.0
}

struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn explicit(ty: ValueType) -> Typed {
        Typed::new(ty, Origin::Flag)
    }

    fn cell(ty: ValueType, s: &str) -> Result<Option<Value>, String> {
        convert_str(&explicit(ty), &Conventions::default(), "c", s).map(|c| c.map(Cell::into_value))
    }

    #[test]
    fn numbers_are_integers_when_integral_and_finite_floats_otherwise() {
        assert_eq!(cell(ValueType::Number, "42").unwrap(), Some(json!(42)));
        assert_eq!(cell(ValueType::Number, " -7 ").unwrap(), Some(json!(-7)));
        assert_eq!(cell(ValueType::Number, "1e3").unwrap(), Some(json!(1000)));
        assert_eq!(cell(ValueType::Number, "2.0").unwrap(), Some(json!(2)));
        assert_eq!(cell(ValueType::Number, "-2.5").unwrap(), Some(json!(-2.5)));
        assert_eq!(
            cell(ValueType::Number, "1.5e-3").unwrap(),
            Some(json!(0.0015))
        );
        assert_eq!(
            cell(ValueType::Number, "18446744073709551615").unwrap(),
            Some(json!(u64::MAX))
        );
        assert_eq!(
            cell(ValueType::Number, "1e300").unwrap(),
            Some(json!(1e300))
        );
        for bad in [
            "abc",
            "NaN",
            "inf",
            "-infinity",
            "1e999",
            "1,5",
            "0x10",
            "12abc",
        ] {
            assert!(cell(ValueType::Number, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn types_read_and_print_as_the_flag_writes_them() {
        for text in [
            "string",
            "number",
            "bool",
            "json",
            "timestamp",
            "timestamp:ms",
            "timestamp:%d.%m.%Y %H:%M",
            "list",
            "list:;",
        ] {
            assert_eq!(text.parse::<ValueType>().unwrap().to_string(), text);
        }
        assert_eq!("list:,".parse::<ValueType>(), Ok(ValueType::List(',')));
        for bad in ["int", "list:", "list:;;", "timestamp:%H:%M", "Timestamp"] {
            assert!(bad.parse::<ValueType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn conventions_apply_to_typed_cells() {
        let comma = Conventions {
            decimal_comma: true,
            strip_apostrophe: true,
            ..Conventions::default()
        };
        let with = |ty: ValueType, s: &str| {
            convert_str(&explicit(ty), &comma, "c", s).map(|c| c.map(Cell::into_value))
        };
        assert_eq!(
            with(ValueType::Number, " 1.853,93 "),
            Ok(Some(json!(1853.93)))
        );
        assert_eq!(with(ValueType::Number, "'42"), Ok(Some(json!(42))));
        assert_eq!(with(ValueType::Number, "1 853"), Ok(Some(json!(1853))));
        assert_eq!(with(ValueType::Number, "1e3"), Ok(Some(json!(1000))));
        let e = with(ValueType::Number, "1.5").unwrap_err();
        assert!(
            e.contains("(with --decimal-comma, a dot groups thousands: 1.853,93)"),
            "{e}"
        );
        let plain = |s: &str| cell(ValueType::Number, s).unwrap_err();
        assert!(plain("0,34").contains("(a decimal comma? pass --decimal-comma)"));
        assert!(
            plain("$1,853.93").ends_with("is not a number (--type c=number)"),
            "{}",
            plain("$1,853.93")
        );
        assert_eq!(with(ValueType::String, "'00123"), Ok(Some(json!("00123"))));
        assert_eq!(
            with(ValueType::List(';'), "a; b;"),
            Ok(Some(json!(["a", "b"])))
        );
        assert_eq!(
            cell(ValueType::Number, "1,853.93"),
            Ok(Some(json!(1853.93)))
        );
        assert_eq!(cell(ValueType::String, "'00123"), Ok(Some(json!("'00123"))));
        // JSON: arrays of strings are lists, digits in a format column read as the cell would.
        let list = Typed::new(ValueType::List(','), Origin::Flag);
        let none = Conventions::default();
        assert!(convert_json(Some(&list), &none, "t", &json!(["a"])).is_ok());
        assert!(convert_json(Some(&list), &none, "t", &json!([1])).is_err());
        let ymd = Typed::new("timestamp:%Y%m%d".parse().unwrap(), Origin::Flag);
        assert_eq!(
            convert_json(Some(&ymd), &none, "d", &json!(20230412)).map(|c| c.map(Cell::into_value)),
            Ok(Some(json!(1_681_257_600)))
        );
    }

    #[test]
    fn number_error_names_column_value_and_flag() {
        let e = convert_str(
            &explicit(ValueType::Number),
            &Conventions::default(),
            "age",
            "abc",
        )
        .unwrap_err();
        assert_eq!(
            e,
            r#"column "age": "abc" is not a number (--type age=number)"#
        );
    }

    #[test]
    fn bools_accept_the_usual_words_in_any_case() {
        for t in ["true", "TRUE", "Yes", "y", "Y", "t", "1", " true "] {
            assert_eq!(cell(ValueType::Bool, t).unwrap(), Some(json!(true)), "{t}");
        }
        for f in ["false", "False", "NO", "n", "f", "0"] {
            assert_eq!(cell(ValueType::Bool, f).unwrap(), Some(json!(false)), "{f}");
        }
        for bad in ["maybe", "2", "yess", "on"] {
            let e = cell(ValueType::Bool, bad).unwrap_err();
            assert!(
                e.contains("is not a bool") && e.contains("--type c=bool"),
                "{e}"
            );
        }
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let ts = |s| cell(ValueType::TIMESTAMP, s);
        let in_ms = |s| cell(ValueType::Timestamp(TimeFormat::Millis), s).unwrap_err();
        assert_eq!(ts("2024-03-05T10:00:00Z").unwrap(), Some(json!(1709632800)));
        assert_eq!(
            ts("2024-03-05T12:00:00+02:00").unwrap(),
            Some(json!(1709632800))
        );
        assert_eq!(ts("2024-03-05T10:00:00").unwrap(), Some(json!(1709632800)));
        assert_eq!(
            ts("2024-03-05T10:00:00.999Z").unwrap(),
            Some(json!(1709632800))
        );
        assert_eq!(ts("2024-03-05").unwrap(), Some(json!(1709596800)));
        assert_eq!(ts("1709632800").unwrap(), Some(json!(1709632800)));
        assert_eq!(ts(" 1709632800 ").unwrap(), Some(json!(1709632800)));
        assert_eq!(ts("1").unwrap(), Some(json!(1)));
        assert_eq!(ts("9999999999").unwrap(), Some(json!(9_999_999_999_i64)));
        // A date written as a date in a column of the user's --type, whatever its year.
        assert_eq!(ts("1969-12-31").unwrap(), Some(json!(-86400)));
        assert_eq!(ts("2300-01-01").unwrap(), Some(json!(10_413_792_000_i64)));
        // As a bare number, the epoch itself, before it, and past 10 digits: no time to send;
        // and no date as created_at (a default type) or an event's.
        let created_at = |s| {
            let typed = Typed::new(ValueType::TIMESTAMP, Origin::Default);
            convert_str(&typed, &Conventions::default(), "c", s).unwrap_err()
        };
        for (bad, read) in [
            ("0", "1970-01-01T00:00:00Z"),
            ("-86400", "1969-12-31"),
            ("10000000000", "the year 2286"),
        ] {
            let e = ts(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad} reads as {read} (timestamp): ")),
                "{e}"
            );
        }
        for (bad, read) in [
            ("1969-12-31", "1969-12-31"),
            ("2300-01-01", "the year 2300"),
        ] {
            let e = created_at(bad);
            assert!(
                e.contains(&format!("{bad} reads as {read} (timestamp): ")),
                "{e}"
            );
        }
        let e = in_ms("99999999999999");
        assert!(e.ends_with("microseconds? divide them by 1,000"), "{e}");
        for bad in [
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "05/03/2024",
            "1709632800.5",
        ] {
            let e = ts(bad).unwrap_err();
            assert!(e.contains("is not a timestamp"), "{bad}: {e}");
        }
    }

    #[test]
    fn milliseconds_are_refused_with_the_fix() {
        let e = convert_str(
            &explicit(ValueType::TIMESTAMP),
            &Conventions::default(),
            "ts",
            "1709632800000",
        )
        .unwrap_err();
        assert_eq!(
            e,
            r#"column "ts": 1709632800000 looks like milliseconds; Customer.io takes Unix seconds (divide by 1,000, or pass --type ts=timestamp:ms)"#
        );
    }

    #[test]
    fn default_type_hint_says_how_to_opt_out() {
        let typed = Typed::new(ValueType::TIMESTAMP, Origin::Default);
        let e = convert_str(&typed, &Conventions::default(), "created_at", "soon").unwrap_err();
        assert!(
            e.starts_with(r#"column "created_at": "soon" is not a timestamp"#),
            "{e}"
        );
        assert!(
            e.ends_with("--type created_at=string sends it as text)"),
            "{e}"
        );
    }

    #[test]
    fn json_cells_parse_and_null_is_empty() {
        assert_eq!(
            cell(ValueType::Json, r#"{"a":[1,2]}"#).unwrap(),
            Some(json!({"a": [1, 2]}))
        );
        assert_eq!(cell(ValueType::Json, "\"s\"").unwrap(), Some(json!("s")));
        assert_eq!(cell(ValueType::Json, "null").unwrap(), None);
        let e = cell(ValueType::Json, "{oops").unwrap_err();
        assert!(e.starts_with(r#"column "c": not valid JSON ("#), "{e}");
        assert!(e.ends_with("(--type c=json)"), "{e}");
    }

    #[test]
    fn strings_keep_whitespace_and_empty_is_empty() {
        assert_eq!(cell(ValueType::String, " a ").unwrap(), Some(json!(" a ")));
        assert_eq!(cell(ValueType::String, "  ").unwrap(), Some(json!("  ")));
        assert_eq!(cell(ValueType::String, "").unwrap(), None);
        for ty in [
            ValueType::Number,
            ValueType::Bool,
            ValueType::TIMESTAMP,
            ValueType::Json,
        ] {
            assert_eq!(cell(ty.clone(), "").unwrap(), None);
            assert_eq!(cell(ty, "  ").unwrap(), None);
        }
    }

    #[test]
    fn json_values_pass_through_or_convert_by_type() {
        let j = |ty: Option<ValueType>, v: Value| {
            convert_json(ty.map(explicit).as_ref(), &Conventions::default(), "k", &v)
                .map(|c| c.map(Cell::into_value))
        };
        // No type: anything passes, null and "" are empty.
        assert_eq!(j(None, json!({"a": 1})).unwrap(), Some(json!({"a": 1})));
        assert_eq!(j(None, json!([1, "x"])).unwrap(), Some(json!([1, "x"])));
        assert_eq!(j(None, json!(" 42")).unwrap(), Some(json!(" 42")));
        assert_eq!(j(None, json!(null)).unwrap(), None);
        assert_eq!(j(None, json!("")).unwrap(), None);
        // Strings are typed as cells are.
        assert_eq!(
            j(Some(ValueType::Number), json!("42")).unwrap(),
            Some(json!(42))
        );
        assert_eq!(
            j(Some(ValueType::Bool), json!("yes")).unwrap(),
            Some(json!(true))
        );
        // Matching JSON types pass.
        assert_eq!(
            j(Some(ValueType::Number), json!(2.5)).unwrap(),
            Some(json!(2.5))
        );
        assert_eq!(
            j(Some(ValueType::Bool), json!(false)).unwrap(),
            Some(json!(false))
        );
        assert_eq!(
            j(Some(ValueType::Bool), json!(1)).unwrap(),
            Some(json!(true))
        );
        assert_eq!(
            j(Some(ValueType::Json), json!({"a": 1})).unwrap(),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            j(Some(ValueType::String), json!(7)).unwrap(),
            Some(json!("7"))
        );
        assert_eq!(
            j(Some(ValueType::String), json!(true)).unwrap(),
            Some(json!("true"))
        );
        assert_eq!(j(Some(ValueType::Number), json!(null)).unwrap(), None);
        // Numbers for timestamps are Unix seconds.
        assert_eq!(
            j(Some(ValueType::TIMESTAMP), json!(1709632800)).unwrap(),
            Some(json!(1709632800))
        );
        assert_eq!(
            j(Some(ValueType::TIMESTAMP), json!(1709632800.7)).unwrap(),
            Some(json!(1709632800))
        );
        let e = j(Some(ValueType::TIMESTAMP), json!(1709632800000_i64)).unwrap_err();
        assert!(e.contains("looks like milliseconds"), "{e}");
        // Contradictions name the column and the flag.
        assert_eq!(
            j(Some(ValueType::Number), json!({"a": 1})).unwrap_err(),
            r#"column "k": an object is not a number (--type k=number)"#
        );
        assert!(j(Some(ValueType::Number), json!(true)).is_err());
        assert!(j(Some(ValueType::Bool), json!(2)).is_err());
        assert!(j(Some(ValueType::String), json!([1])).is_err());
        assert!(j(Some(ValueType::TIMESTAMP), json!(false)).is_err());
    }

    #[test]
    fn helpers_format_for_messages() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_204), "1,204");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(quote("ab"), "\"ab\"");
        assert_eq!(quote(&"é".repeat(50)), format!("{:?}…", "é".repeat(40)));
        assert_eq!(value_size(&json!("héllo")), 6);
        assert_eq!(value_size(&json!({"a": 1})), 7);
        assert_eq!(value_size(&json!(12345)), 5);
    }
}
