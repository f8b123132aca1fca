//! Words as a POSIX shell reads them: every message that prints a flag or a command quotes
//! with [`word`], so what it shows can be pasted as it is.

use std::borrow::Cow;

/// `word` as one word for a POSIX shell: bare when every character is one no shell treats
/// specially (`Email=email`, `%Y-%m-%d`), else single-quoted, where nothing expands (`'` as
/// `'\''`). Debug quoting (`"…"`) would not do: `$`, `` ` ``, `\` and `!` act inside it.
pub fn word(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// A flag and its value as a command line gives them: `--type 'Signup Date=timestamp'`.
pub fn flag(flag: &str, value: &str) -> String {
    format!("{flag} {}", word(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safe_word_stays_bare_and_any_other_is_single_quoted() {
        assert_eq!(word("Email=email"), "Email=email");
        assert_eq!(word("d=timestamp:%m/%d/%Y"), "d=timestamp:%m/%d/%Y");
        assert_eq!(word("Email Address=email"), "'Email Address=email'");
        assert_eq!(word("cost$USD=`x`\\!"), "'cost$USD=`x`\\!'");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word("tab\there"), "'tab\there'");
        assert_eq!(word(""), "''");
        assert_eq!(word("名前"), "'名前'");
        assert_eq!(flag("--drop", "a b"), "--drop 'a b'");
    }
}
