//! Language tags as manifests carry them: ISO 639-1 where one exists, so `eng`, `en` and
//! `EN` all become `en` and a viewer's preference (`de`) matches a German track whatever
//! its source wrote (`ger`, `deu`, `de`).

/// ISO 639-2 (bibliographic and terminology codes) → ISO 639-1 for the common languages.
const ISO639_2_TO_1: &[(&str, &str)] = &[
    ("alb", "sq"),
    ("ara", "ar"),
    ("arm", "hy"),
    ("baq", "eu"),
    ("ben", "bn"),
    ("bos", "bs"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("chi", "zh"),
    ("cym", "cy"),
    ("cze", "cs"),
    ("dan", "da"),
    ("deu", "de"),
    ("dut", "nl"),
    ("ell", "el"),
    ("eng", "en"),
    ("est", "et"),
    ("eus", "eu"),
    ("fas", "fa"),
    ("fil", "tl"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("fre", "fr"),
    ("geo", "ka"),
    ("ger", "de"),
    ("gle", "ga"),
    ("glg", "gl"),
    ("gre", "el"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ice", "is"),
    ("ind", "id"),
    ("isl", "is"),
    ("ita", "it"),
    ("jpn", "ja"),
    ("kat", "ka"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mac", "mk"),
    ("mal", "ml"),
    ("may", "ms"),
    ("mkd", "mk"),
    ("msa", "ms"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("nno", "nn"),
    ("nor", "no"),
    ("per", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rum", "ro"),
    ("rus", "ru"),
    ("slk", "sk"),
    ("slo", "sk"),
    ("slv", "sl"),
    ("spa", "es"),
    ("sqi", "sq"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("vie", "vi"),
    ("wel", "cy"),
    ("zho", "zh"),
];

/// Normalizes a language tag from a source (stream metadata, a sidecar file name): trims,
/// lowercases the primary subtag, maps ISO 639-2 codes to ISO 639-1 where the table has
/// them (`ger` → `de`, `pt-BR` stays), and returns `None` for unknown or undetermined
/// (`und`, `zxx`, `mis`, `mul`) or anything that is not 1-35 of `[A-Za-z0-9-]`.
pub fn normalize(tag: &str) -> Option<String> {
    let tag = tag.trim().replace('_', "-");
    if tag.is_empty()
        || tag.len() > crate::manifest::MAX_LANGUAGE_LEN
        || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || tag.starts_with('-')
    {
        return None;
    }
    let (primary, rest) = match tag.split_once('-') {
        Some((p, r)) => (p.to_ascii_lowercase(), Some(r)),
        None => (tag.to_ascii_lowercase(), None),
    };
    if matches!(primary.as_str(), "und" | "zxx" | "mis" | "mul") || primary.is_empty() {
        return None;
    }
    let primary = ISO639_2_TO_1
        .iter()
        .find(|(three, _)| *three == primary)
        .map_or(primary.clone(), |(_, two)| (*two).to_owned());
    Some(match rest {
        Some(r) if !r.is_empty() => format!("{primary}-{r}"),
        _ => primary,
    })
}

/// An English display name for a (normalized) language tag, when the table knows it.
pub fn display_name(tag: &str) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("ar", "Arabic"),
        ("bg", "Bulgarian"),
        ("cs", "Czech"),
        ("da", "Danish"),
        ("de", "German"),
        ("el", "Greek"),
        ("en", "English"),
        ("es", "Spanish"),
        ("fa", "Persian"),
        ("fi", "Finnish"),
        ("fr", "French"),
        ("he", "Hebrew"),
        ("hi", "Hindi"),
        ("hr", "Croatian"),
        ("hu", "Hungarian"),
        ("id", "Indonesian"),
        ("it", "Italian"),
        ("ja", "Japanese"),
        ("ko", "Korean"),
        ("nl", "Dutch"),
        ("no", "Norwegian"),
        ("nb", "Norwegian"),
        ("pl", "Polish"),
        ("pt", "Portuguese"),
        ("ro", "Romanian"),
        ("ru", "Russian"),
        ("sk", "Slovak"),
        ("sl", "Slovenian"),
        ("sr", "Serbian"),
        ("sv", "Swedish"),
        ("th", "Thai"),
        ("tr", "Turkish"),
        ("uk", "Ukrainian"),
        ("vi", "Vietnamese"),
        ("zh", "Chinese"),
    ];
    let primary = tag.split('-').next().unwrap_or(tag);
    NAMES.iter().find(|(k, _)| *k == primary).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalize() {
        assert_eq!(normalize("eng").as_deref(), Some("en"));
        assert_eq!(normalize(" GER ").as_deref(), Some("de"));
        assert_eq!(normalize("deu").as_deref(), Some("de"));
        assert_eq!(normalize("pt-BR").as_deref(), Some("pt-BR"));
        assert_eq!(normalize("pt_BR").as_deref(), Some("pt-BR"));
        assert_eq!(normalize("tlh").as_deref(), Some("tlh"));
        assert_eq!(normalize("und"), None);
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("en us"), None);
        assert_eq!(normalize(&"a".repeat(36)), None);
        assert_eq!(display_name("de"), Some("German"));
        assert_eq!(display_name("pt-BR"), Some("Portuguese"));
    }
}
