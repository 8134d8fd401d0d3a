//! Text helpers shared by search: what a person types must find "Saint-Étienne" as
//! "saint etienne".

/// Lower-cases, removes French diacritics, and turns punctuation into single spaces.
pub fn search_key(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut last_was_space = true;
    for c in input.chars().flat_map(char::to_lowercase) {
        let mapped: &str = match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => "a",
            'ç' => "c",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' | 'í' | 'ì' => "i",
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => "o",
            'ù' | 'û' | 'ü' | 'ú' => "u",
            'ÿ' => "y",
            'ñ' => "n",
            'œ' => "oe",
            'æ' => "ae",
            c if c.is_alphanumeric() => {
                out.push(c);
                last_was_space = false;
                continue;
            }
            _ => " ",
        };
        if mapped == " " {
            if !last_was_space {
                out.push(' ');
                last_was_space = true;
            }
        } else {
            out.push_str(mapped);
            last_was_space = false;
        }
    }
    out.trim_end().to_string()
}

/// Words added to a referral's search document naming its parquet and its administration, so
/// that a search within one organisation's referrals is answered by the full-text index alone
/// (the intersection of the words' lists) instead of matching nationally then filtering. They
/// only narrow: the scope is still checked on the referral itself.
pub fn scope_words(parquet: Option<uuid::Uuid>, administration: uuid::Uuid) -> String {
    let mut words = administration_word(administration);
    if let Some(parquet) = parquet {
        words.push(' ');
        words.push_str(&parquet_word(parquet));
    }
    words
}

pub fn parquet_word(id: uuid::Uuid) -> String {
    format!("zp{}", id.simple())
}

pub fn administration_word(id: uuid::Uuid) -> String {
    format!("za{}", id.simple())
}

#[cfg(test)]
mod tests {
    use super::search_key;

    #[test]
    fn folds_accents_case_and_punctuation() {
        assert_eq!(search_key("Saint-Étienne"), "saint etienne");
        assert_eq!(search_key("  L'Haÿ-les-Roses "), "l hay les roses");
        assert_eq!(search_key("ŒUVRE d'art"), "oeuvre d art");
        assert_eq!(search_key("VOL AVEC ARME"), "vol avec arme");
    }
}
