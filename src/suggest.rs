//! "Did you mean …?": the nearest known names to a misspelt one.

/// Edit distance between two strings, by characters (two rows of the classic table).
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `limit` candidates close enough to `word` to be what was meant, nearest first.
/// "Close enough" scales with the word's length, so short names do not match everything.
pub fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let word_upper = word.to_ascii_uppercase();
    // Long names can afford more slips; three letters off a four-letter name is another word.
    let budget = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (distance(&word_upper, &c.to_ascii_uppercase()), c))
        .filter(|(d, _)| *d <= budget)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_are_close_and_ordered() {
        let known = [
            "ONCRMLEADADD",
            "ONCRMLEADUPDATE",
            "ONCRMDEALADD",
            "ONTASKADD",
        ];
        assert_eq!(nearest("ONCRMLEADAD", known, 3)[0], "ONCRMLEADADD");
        assert!(!nearest("ONCRMLEADAD", known, 3).contains(&"ONTASKADD"));
        assert_eq!(nearest("oncrmleadadd", known, 1), ["ONCRMLEADADD"]);
        assert!(nearest("XYZ", known, 3).is_empty());
    }
}
