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
