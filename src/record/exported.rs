//! Values as spreadsheets and exports write them: numbers with thousands separators or a
//! decimal comma, lists in one cell, and the apostrophe a spreadsheet puts before a number
//! it must keep as text.

use serde_json::{Number, Value};

use super::value::parse_number;

/// Characters that separate thousands besides the grouping one (`,`, or `.` with a decimal
/// comma): a space, a no-break space, a narrow no-break space (French), an apostrophe (Swiss).
const SPACES: [char; 4] = [' ', '\u{a0}', '\u{202f}', '\''];

/// A number written with thousands separators (`1,853.93`, `1 853.93`), or with a decimal
/// comma when `decimal_comma` (`0,34`, `1.853,93`, `1 853,93`). Groups after the first are
/// three digits, so `1,5` is no number without `decimal_comma` (is it 1.5 or 15?).
pub(super) fn grouped_number(s: &str, decimal_comma: bool) -> Option<Number> {
    let (group, point) = if decimal_comma {
        ('.', ',')
    } else {
        (',', '.')
    };
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (whole, fraction) = match body.split_once(point) {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let mut plain = String::with_capacity(s.len());
    plain.push_str(sign);
    let separator = whole.chars().find(|&c| c == group || SPACES.contains(&c));
    match separator {
        None => plain.push_str(whole),
        Some(sep) => {
            let mut groups = whole.split(sep);
            let first = groups.next()?;
            // `0,123` is no thousands: a decimal comma (or a list), so refused for its hint.
            if first.is_empty() || first.len() > 3 || first.starts_with('0') {
                return None;
            }
            plain.push_str(first);
            for g in groups {
                if g.len() != 3 {
                    return None;
                }
                plain.push_str(g);
            }
        }
    }
    if !plain[sign.len()..].bytes().all(|b| b.is_ascii_digit()) || plain.len() == sign.len() {
        return None;
    }
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        plain.push('.');
        plain.push_str(fraction);
    }
    parse_number(&plain)
}

/// A list cell as a JSON array: split on `separator`, each item trimmed, empty ones dropped;
/// None when no item is left.
pub(super) fn list(s: &str, separator: char) -> Option<Value> {
    let items: Vec<Value> = s
        .split(separator)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| Value::String(item.to_owned()))
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// The cell without a spreadsheet's leading apostrophe, when what follows is what a
/// spreadsheet would have turned into a number or a date (`'7012345678`, `'+1 613 555 0123`,
/// `'00123`); anything else keeps it (`'s-Hertogenbosch`, `'90s`).
pub(super) fn without_apostrophe(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest)
            if rest.starts_with(|c: char| c.is_ascii_digit() || c == '+')
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().,/:".contains(c)) =>
        {
            rest
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(s: &str, comma: bool) -> Option<Value> {
        grouped_number(s, comma).map(Value::Number)
    }

    #[test]
    fn thousands_separators_and_decimal_commas() {
        assert_eq!(n("1,853.93", false), Some(json!(1853.93)));
        assert_eq!(n("1,234,567", false), Some(json!(1234567)));
        assert_eq!(n("-1 853.5", false), Some(json!(-1853.5)));
        assert_eq!(n("1\u{202f}853", false), Some(json!(1853)));
        assert_eq!(n("1'853.93", false), Some(json!(1853.93)));
        assert_eq!(n("0,34", true), Some(json!(0.34)));
        assert_eq!(n("1.853,93", true), Some(json!(1853.93)));
        assert_eq!(n("1 853,93", true), Some(json!(1853.93)));
        assert_eq!(n("1.234.567", true), Some(json!(1234567)));
        assert_eq!(n("42", true), Some(json!(42)));
        for (bad, comma) in [
            ("1,5", false),
            ("1,8533", false),
            ("12345,678", false),
            (",853", false),
            ("1,853.", false),
            ("1,853.9.3", false),
            ("1 853,93", false),
            ("1.5", true),
            ("1,853.93", true),
            ("abc", true),
            ("-", false),
            ("1,,853", false),
            ("0,123", false),
            ("-0,500", false),
            ("0.123", true),
        ] {
            assert_eq!(n(bad, comma), None, "{bad} {comma}");
        }
    }

    #[test]
    fn lists_split_trim_and_drop_empty_items() {
        assert_eq!(
            list("vip, wholesale", ','),
            Some(json!(["vip", "wholesale"]))
        );
        assert_eq!(list(" a ;; b ;", ';'), Some(json!(["a", "b"])));
        assert_eq!(list(" , ", ','), None);
        assert_eq!(list("one", ','), Some(json!(["one"])));
    }

    #[test]
    fn the_apostrophe_goes_only_before_what_a_spreadsheet_would_mangle() {
        assert_eq!(without_apostrophe("'7012345678"), "7012345678");
        assert_eq!(without_apostrophe("'+1 613-555-0123"), "+1 613-555-0123");
        assert_eq!(without_apostrophe("'2023-04-12"), "2023-04-12");
        assert_eq!(without_apostrophe("'s-Hertogenbosch"), "'s-Hertogenbosch");
        assert_eq!(without_apostrophe("'90s"), "'90s");
        assert_eq!(without_apostrophe("'"), "'");
        assert_eq!(without_apostrophe("7012345678"), "7012345678");
    }
}
