//! The pages' HTML: one escaping helper (every interpolated value goes through [`escape`]
//! or [`attr`]), one layout, and small form pieces. No templates, no framework.

/// `s` escaped for HTML text and quoted attribute values: `& < > " '`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The same as [`escape`] (attributes are always double-quoted here); named for where it
/// is used.
pub fn attr(s: &str) -> String {
    escape(s)
}

/// A whole page: `title` and `body` (already HTML), the stylesheet, and the passkey
/// script when `script` is set.
pub fn layout(title: &str, body: &str, script: bool) -> String {
    let script = if script {
        "<script src=\"/static/passkeys.js\" defer></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · reelnet</title><link rel=\"stylesheet\" href=\"/static/reelnet.css\">{script}</head>\
         <body><header><a href=\"/account\">reelnet</a></header><main><h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title),
    )
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        attr(name),
        attr(value)
    )
}

/// The form's CSRF field.
pub fn csrf(token: &str) -> String {
    hidden("csrf", token)
}

/// A message box: `kind` is `error` or `info`; `text` is escaped.
pub fn message(kind: &str, text: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!(
        "<p class=\"message {}\" role=\"{role}\">{}</p>",
        attr(kind),
        escape(text)
    )
}

/// A labelled input: `id` and `name` are the same.
pub fn input(label: &str, id: &str, kind: &str, value: &str, autocomplete: &str) -> String {
    format!(
        "<label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" value=\"{}\" type=\"{}\" autocomplete=\"{}\" required>",
        escape(label),
        attr(value),
        attr(kind),
        attr(autocomplete),
        id = attr(id),
    )
}

/// A date (unix seconds) as `YYYY-MM-DD HH:MM UTC`.
pub fn date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape(""), "");
        // Already-escaped text is escaped again (never trusted).
        assert_eq!(escape("&amp;"), "&amp;amp;");
        // An attribute value cannot be closed from inside.
        let h = hidden("next", "\"><script>x</script>");
        assert_eq!(
            h,
            "<input type=\"hidden\" name=\"next\" value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\">"
        );
        assert!(!layout("<b>", "", false).contains("<b>"));
        assert!(message("error", "<i>").contains("&lt;i&gt;"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00 UTC");
    }
}
