//! Realistic-looking names for artists, albums and tracks, drawn from fixed word lists.
//!
//! Track file names are 40–120 bytes long including the extension, like the
//! `NN - Artist - Title (Remastered 2011).flac` names that rippers and taggers write; a few
//! words are accented or Japanese, so names exercise multi-byte UTF-8 too.

use crate::rng::SplitMix64;

const FIRST: &[&str] = &[
    "John", "Maria", "Ahmed", "Yuki", "Lena", "Oscar", "Nina", "Pedro", "Ingrid", "Kwame", "Sofia",
    "Dmitri", "Chloé", "Björn", "Aisha", "Mateo", "Hana", "Liam", "Zoë", "Ravi", "Elena", "Tomás",
    "Greta", "Jamal", "Mei", "Lars", "Amélie", "Kenji", "Olu", "Freya",
];

const LAST: &[&str] = &[
    "Smith",
    "García",
    "Nakamura",
    "Johansson",
    "Okafor",
    "Novak",
    "Müller",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Haddad",
    "Fernández",
    "Lindqvist",
    "Tanaka",
    "O'Brien",
    "Petrov",
    "Silva",
    "Andersen",
    "Moreau",
    "Khan",
    "Walker",
    "Nguyen",
    "Schmidt",
    "Costa",
    "Ibáñez",
];

const ADJ: &[&str] = &[
    "Silent", "Electric", "Golden", "Broken", "Midnight", "Velvet", "Hollow", "Crimson", "Distant",
    "Frozen", "Wild", "Lonely", "Neon", "Paper", "Bitter", "Endless", "Quiet", "Burning",
    "Northern", "Secret", "Fading", "Restless", "Sacred", "Lost", "Little", "Blue", "Strange",
    "Sweet", "Hidden", "Falling", "Eternal", "Dusty", "Shining",
];

const NOUN: &[&str] = &[
    "River",
    "Machine",
    "Garden",
    "Heart",
    "Ocean",
    "Mirror",
    "Highway",
    "Shadow",
    "Engine",
    "Harbor",
    "Forest",
    "Signal",
    "Window",
    "Circus",
    "Desert",
    "Lantern",
    "Station",
    "Thunder",
    "Valley",
    "Satellite",
    "Cathedral",
    "Horizon",
    "Echo",
    "Stranger",
    "Kingdom",
    "Morning",
    "Season",
    "Parade",
    "Wolves",
    "Sparrow",
    "Tide",
    "Ember",
    "Canyon",
    "Dream",
    "夜明け",
    "さくら",
    "Café",
    "Mañana",
    "Fjäril",
    "Sommarnatt",
];

const VERB: &[&str] = &[
    "Dancing",
    "Running",
    "Waiting",
    "Falling",
    "Calling",
    "Dreaming",
    "Burning",
    "Leaving",
    "Singing",
    "Drifting",
    "Chasing",
    "Holding",
    "Breaking",
    "Walking",
    "Wandering",
];

const PREP: &[&str] = &[
    "in the",
    "of the",
    "under the",
    "through the",
    "beyond the",
    "across the",
    "into the",
    "after the",
    "for the",
    "with the",
];

const SUFFIX: &[&str] = &[
    " (Remastered)",
    " (Live)",
    " (Acoustic Version)",
    " (Radio Edit)",
    " (Extended Mix)",
    " (Demo)",
    " (Instrumental)",
    " (Single Version)",
    " (Bonus Track)",
    " (Live at the Royal Albert Hall)",
    " (2011 Remaster)",
];

const ALBUM_SUFFIX: &[&str] = &[
    " [Deluxe Edition]",
    " (Remastered)",
    " [FLAC]",
    " (Expanded Edition)",
    " [24-96]",
    " (Live)",
    " [Japan Edition]",
];

/// A band or person name, 5–50 bytes.
pub fn artist(g: &mut SplitMix64) -> String {
    match g.below(6) {
        0 | 1 => format!("{} {}", g.pick(FIRST), g.pick(LAST)),
        2 => format!("The {} {}", g.pick(ADJ), g.pick(NOUN)),
        3 => format!("{} {}", g.pick(ADJ), g.pick(NOUN)),
        4 => format!("{} {} & The {}s", g.pick(FIRST), g.pick(LAST), g.pick(NOUN)),
        _ => format!("{} {} {}", g.pick(NOUN), g.pick(PREP), g.pick(NOUN)),
    }
}

/// An album title (without year).
pub fn album(g: &mut SplitMix64) -> String {
    let mut s = match g.below(4) {
        0 => format!("{} {}", g.pick(ADJ), g.pick(NOUN)),
        1 => format!("{} {} {}", g.pick(VERB), g.pick(PREP), g.pick(NOUN)),
        2 => g.pick(NOUN).to_string(),
        _ => format!(
            "{} {} {} {}",
            g.pick(ADJ),
            g.pick(NOUN),
            g.pick(PREP),
            g.pick(NOUN)
        ),
    };
    if g.chance(20) {
        s.push_str(g.pick(ALBUM_SUFFIX));
    }
    s
}

/// A song title, 2–8 words.
pub fn title(g: &mut SplitMix64) -> String {
    let mut s = match g.below(4) {
        0 => format!("{} {}", g.pick(ADJ), g.pick(NOUN)),
        1 => format!("{} {} {}", g.pick(VERB), g.pick(PREP), g.pick(NOUN)),
        2 => format!(
            "{} {} {} {} {}",
            g.pick(ADJ),
            g.pick(NOUN),
            g.pick(PREP),
            g.pick(ADJ),
            g.pick(NOUN)
        ),
        _ => format!("{} {}", g.pick(VERB), g.pick(NOUN)),
    };
    if g.chance(15) {
        s.push_str(g.pick(SUFFIX));
    }
    s
}

/// Cuts `s` to at most `max` bytes at a character boundary, without trailing spaces.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    while s.ends_with(' ') || s.ends_with('(') || s.ends_with('-') {
        s.pop();
    }
}

/// A track file name `NN - Artist - Title.ext` whose length (with `.ext`) is between 40 and
/// 120 bytes: short names are lengthened with more words, long ones cut.
pub fn track_file(g: &mut SplitMix64, number: u64, artist: &str, title: &str, ext: &str) -> String {
    let target = g.range(40, 120) as usize - ext.len() - 1;
    let mut s = if g.chance(60) {
        format!("{number:02} - {artist} - {title}")
    } else {
        format!("{number:02} - {title}")
    };
    while s.len() < 40 - ext.len() - 1 || (s.len() < target && g.chance(50)) {
        s.push(' ');
        s.push_str(g.pick(NOUN));
    }
    cut(&mut s, target.max(40 - ext.len() - 1));
    while s.len() < 40 - ext.len() - 1 {
        s.push('_');
    }
    s.push('.');
    s.push_str(ext);
    s
}

/// The name of an album directory, `YEAR - Album`.
pub fn album_dir(year: u64, album: &str) -> String {
    let mut s = format!("{year} - {album}");
    cut(&mut s, 200);
    s.replace('/', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_names_are_40_to_120_bytes() {
        let mut g = SplitMix64::new(3);
        for i in 0..20_000 {
            let a = artist(&mut g);
            let t = title(&mut g);
            let ext = g.pick(&["flac", "mp3", "m4a", "ogg"]);
            let n = track_file(&mut g, i % 30 + 1, &a, &t, ext);
            assert!((40..=120).contains(&n.len()), "{} bytes: {n}", n.len());
            assert!(n.ends_with(ext));
            assert!(!n.contains('/') && !n.contains('\0'));
        }
    }
}
