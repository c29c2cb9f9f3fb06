//! Catalog search: filters, ranks and pages the movies the catalog knows for
//! `GET /api/v1/catalog` (see `gateway/catalog.rs` for the contract). Pure functions over
//! [`MovieInfo`]: typo-tolerant, prefix-aware matching of query words against title words
//! (edit distance 1, 2 for words of 8+ characters, exact or prefix under 4 characters), a
//! four-digit year as a strong but never excluding match; ranked by score, then fewer
//! title words, then newest.

use std::collections::BTreeMap;

use super::catalog::{CatalogPage, CatalogQuery, MovieInfo, MAX_QUERY_WORDS};

/// Filters, ranks and pages `movies` as `query` asks.
pub fn search(movies: &[MovieInfo], query: &CatalogQuery) -> CatalogPage {
    let mut genres: BTreeMap<String, String> = BTreeMap::new();
    for m in movies {
        for g in &m.detail.card.genres {
            genres.entry(g.to_lowercase()).or_insert_with(|| g.clone());
        }
    }
    let in_genre = |m: &MovieInfo| match &query.genre {
        Some(g) => m
            .detail
            .card
            .genres
            .iter()
            .any(|x| x.eq_ignore_ascii_case(g)),
        None => true,
    };
    let words = query.q.as_deref().map(words).unwrap_or_default();
    let mut hits: Vec<(u32, &MovieInfo)> = if words.is_empty() {
        movies
            .iter()
            .filter(|m| in_genre(m))
            .map(|m| (0, m))
            .collect()
    } else {
        let words = &words[..words.len().min(MAX_QUERY_WORDS)];
        movies
            .iter()
            .filter(|m| in_genre(m))
            .filter_map(|m| score(words, m).map(|s| (s, m)))
            .collect()
    };
    // Among equal scores, the more specific title (fewer words, then shorter) first.
    let specificity = |m: &MovieInfo| {
        let t = &m.detail.card.title;
        (t.split_whitespace().count(), t.chars().count())
    };
    hits.sort_by(|(sa, a), (sb, b)| {
        let (ca, cb) = (&a.detail.card, &b.detail.card);
        sb.cmp(sa)
            .then_with(|| {
                if words.is_empty() {
                    std::cmp::Ordering::Equal
                } else {
                    specificity(a).cmp(&specificity(b))
                }
            })
            .then_with(|| cb.added_at.cmp(&ca.added_at))
            .then_with(|| ca.title.to_lowercase().cmp(&cb.title.to_lowercase()))
            .then_with(|| ca.id.cmp(&cb.id))
    });
    let total = hits.len();
    let start = (query.page.max(1) - 1).saturating_mul(query.per_page);
    let results = hits
        .into_iter()
        .skip(start)
        .take(query.per_page)
        .map(|(_, m)| m.detail.card.clone())
        .collect();
    CatalogPage {
        results,
        page: query.page.max(1),
        per_page: query.per_page,
        total,
        genres: genres.into_values().collect(),
    }
}

/// Lowercased words of `text`, accents folded, split at anything not a letter or digit.
pub fn words(text: &str) -> Vec<String> {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(fold)
        .collect::<String>()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Folds common Latin accents: `é` → `e`.
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

const EXACT: u32 = 100;
const YEAR: u32 = 90;
const PREFIX: u32 = 60;
const TYPO: u32 = 45;
const TYPO_PREFIX: u32 = 25;

/// How well one query word matches one title word, if at all.
fn word_score(q: &str, t: &str, last: bool) -> Option<u32> {
    if q == t {
        return Some(EXACT);
    }
    let qn = q.chars().count();
    let tn = t.chars().count();
    if t.starts_with(q) {
        // Longer prefixes of shorter words rank higher: 60..=89.
        return Some(PREFIX + (29 * qn / tn.max(1)) as u32);
    }
    let max_typos = if qn >= 8 {
        2
    } else if qn >= 4 {
        1
    } else {
        0
    };
    if max_typos == 0 {
        return None;
    }
    let d = distance(q, t, max_typos);
    if d <= max_typos {
        return Some(TYPO - 10 * d as u32);
    }
    // The word being typed, with a typo: compare with the title word's prefix.
    if last && tn > qn {
        let prefix: String = t.chars().take(qn).collect();
        if distance(q, &prefix, 1) <= 1 {
            return Some(TYPO_PREFIX);
        }
    }
    None
}

/// The score of a movie for query `words`: `None` unless every word (other than a
/// year-shaped one) matches a title word.
fn score(query: &[String], m: &MovieInfo) -> Option<u32> {
    let card = &m.detail.card;
    let title_words = words(&card.title);
    let alt_words: Vec<String> = m.alt_titles.iter().flat_map(|t| words(t)).collect();
    let year = card.year.map(|y| y.to_string());
    let mut total = 0u32;
    let mut matched = 0usize;
    for (i, q) in query.iter().enumerate() {
        let last = i + 1 == query.len();
        let best_title = title_words
            .iter()
            .filter_map(|t| word_score(q, t, last))
            .max();
        let best_alt = alt_words
            .iter()
            .filter_map(|t| word_score(q, t, last))
            .max()
            .map(|s| s.saturating_sub(10));
        let year_shaped = q.len() == 4 && q.bytes().all(|b| b.is_ascii_digit());
        let year_hit = (year_shaped && year.as_deref() == Some(q.as_str())).then_some(YEAR);
        match best_title.max(best_alt).max(year_hit) {
            Some(s) => {
                total += s;
                matched += 1;
            }
            None if year_shaped => {}
            None => return None,
        }
    }
    if matched == 0 {
        return None;
    }
    // Word order: the query starting like the title.
    if let (Some(q), Some(t)) = (query.first(), title_words.first()) {
        if t.starts_with(q.as_str()) {
            total += 15;
        }
    }
    // The whole title typed (a year after it does not count against it).
    let typed: Vec<&String> = query
        .iter()
        .filter(|q| {
            let year_shaped = q.len() == 4 && q.bytes().all(|b| b.is_ascii_digit());
            !year_shaped || title_words.contains(q)
        })
        .collect();
    if typed.len() == title_words.len() && typed.iter().zip(&title_words).all(|(q, t)| *q == t) {
        total += 50;
    }
    Some(total)
}

/// Optimal-string-alignment distance (adjacent transpositions count 1), or `limit + 1`
/// once it is certain to exceed `limit`.
pub(crate) fn distance(a: &str, b: &str, limit: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        let mut row_min = usize::MAX;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
            row_min = row_min.min(v);
        }
        if row_min > limit {
            return limit + 1;
        }
    }
    d[n][m].min(limit + 1)
}
