//! The query language, as in beets:
//!
//! * `word` — case-insensitive substring (Unicode case folding) of title, artist, album, album
//!   artist, genre or path;
//! * `field:value` — substring; on numeric fields, equality; `field:a..b`, `field:a..`,
//!   `field:..b` — inclusive ranges on numeric fields; `path:/a/b` (a value starting with `/`)
//!   — the subtree at `/a/b`; `field:` — the field is present (e.g. `error:`);
//! * `field:=value` — exact, case-sensitive; `field::regex` — a regular expression;
//! * `^term` — negation; terms are ANDed; a `,` argument between terms starts an OR group, and
//!   so does a `,` that ends a term (`a, b`, as beets reads it): a value that ends in a comma is
//!   written `path:/x,/` (a directory) or as a regex (`name::x[,]`).

use crate::query::{Field, FieldType};

/// A parsed query: groups ORed, terms within a group ANDed. Empty matches everything.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub(crate) groups: Vec<Vec<Term>>,
}

impl Query {
    /// Every record under directory `dir` (exact path bytes, at any depth), as `path:/dir`
    /// would select, for paths that need not be UTF-8.
    pub fn subtree(dir: &[u8]) -> Query {
        let dir = dir.strip_suffix(b"/").unwrap_or(dir);
        Query {
            groups: vec![vec![Term {
                negate: false,
                test: Test::Subtree(if dir.is_empty() {
                    b"/".to_vec()
                } else {
                    dir.to_vec()
                }),
            }]],
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Term {
    pub negate: bool,
    pub test: Test,
}

#[derive(Clone, Debug)]
pub(crate) enum Test {
    /// Case-folded needle, matched against the default text fields.
    Any(Needle),
    Substring(Field, Needle),
    Exact(Field, String),
    Regex(Field, regex::Regex),
    Range(Field, Option<i64>, Option<i64>),
    Equal(Field, i64),
    Bool(Field, bool),
    Subtree(Vec<u8>),
    Present(Field),
}

impl Test {
    /// The one field the test reads; `None` for a bare word and a subtree.
    pub fn field(&self) -> Option<Field> {
        match self {
            Test::Substring(f, _)
            | Test::Exact(f, _)
            | Test::Regex(f, _)
            | Test::Equal(f, _)
            | Test::Range(f, _, _)
            | Test::Bool(f, _)
            | Test::Present(f) => Some(*f),
            Test::Any(_) | Test::Subtree(_) => None,
        }
    }
}

/// What is wrong with a regular expression, on one line (the regex crate's syntax errors span
/// several, drawing a caret under the pattern).
fn regex_problem(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| s.lines().last().unwrap_or(s))
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than {limit} bytes; make it simpler")
        }
        other => other.to_string().replace('\n', " "),
    }
}

/// A case-folded needle, with an ASCII fast path.
#[derive(Clone, Debug)]
pub(crate) struct Needle {
    pub folded: String,
    pub ascii: bool,
}

impl Needle {
    pub fn new(s: &str) -> Needle {
        let folded = caseless::default_case_fold_str(s);
        Needle {
            ascii: folded.is_ascii(),
            folded,
        }
    }

    /// Whether `hay` contains the needle, case-insensitively.
    pub fn found_in(&self, hay: &str) -> bool {
        if self.folded.is_empty() {
            return true;
        }
        if self.ascii {
            // A match among the ASCII characters of `hay` is a match after folding; only
            // non-ASCII characters (ß, ﬁ, the Kelvin sign…) can fold into one elsewhere.
            if contains_ignore_ascii_case(hay.as_bytes(), self.folded.as_bytes()) {
                return true;
            }
            if hay.is_ascii() {
                return false;
            }
        }
        FOLDED.with_borrow_mut(|buf| {
            fold_into(hay, buf);
            buf.contains(&self.folded)
        })
    }
}

/// Whether `h` contains `n` (not empty), ASCII letters compared without case: candidates are
/// found with `memchr2` on the first byte in both cases.
fn contains_ignore_ascii_case(h: &[u8], n: &[u8]) -> bool {
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut from = 0;
    while let Some(k) = memchr::memchr2(lower, upper, &h[from..]) {
        let at = from + k;
        match h.get(at + 1..at + n.len()) {
            Some(tail) if tail.eq_ignore_ascii_case(rest) => return true,
            Some(_) => from = at + 1,
            None => return false,
        }
    }
    false
}

thread_local! {
    /// The folded haystack, reused from one test to the next.
    static FOLDED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `caseless::default_case_fold_str(s)` into `out`. Folding works character by character,
/// so ASCII characters, the bulk of most tags and paths, are lowercased without the folding
/// machinery.
fn fold_into(s: &str, out: &mut String) {
    use caseless::Caseless;
    out.clear();
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(std::iter::once(c).default_case_fold());
        }
    }
}

/// A query that could not be parsed; the message points at the term.
#[derive(Debug, thiserror::Error)]
#[error("bad query term `{term}`: {message}")]
pub struct ParseError {
    /// The offending term as given.
    pub term: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn parse_number(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok()
}

fn parse_term(raw: &str) -> Result<Term, ParseError> {
    let err = |message: String| ParseError {
        term: raw.to_owned(),
        message,
    };
    let (negate, body) = match raw.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if body.is_empty() {
        return Err(err("empty term".into()));
    }
    let Some((name, rest)) = body.split_once(':') else {
        return Ok(Term {
            negate,
            test: Test::Any(Needle::new(body)),
        });
    };
    let Some(field) = Field::from_name(name) else {
        // A colon inside plain words (a title like "Re: Stacks", "a:b c") is a bare word.
        if name.is_empty()
            || name.contains(char::is_whitespace)
            || rest.starts_with(char::is_whitespace)
        {
            return Ok(Term {
                negate,
                test: Test::Any(Needle::new(body)),
            });
        }
        return Err(err(format!(
            "unknown field `{name}`; fields are: {}",
            Field::all_names()
        )));
    };
    let test = if let Some(re) = rest.strip_prefix(':') {
        let re = regex::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| err(format!("bad regular expression: {}", regex_problem(&e))))?;
        Test::Regex(field, re)
    } else if let Some(v) = rest.strip_prefix('=') {
        match field.ty() {
            FieldType::Number => Test::Equal(
                field,
                parse_number(v).ok_or_else(|| err(format!("`{}` takes a number", field.name())))?,
            ),
            FieldType::Bool => {
                Test::Bool(field, parse_bool(v).ok_or_else(|| err(bool_msg(field)))?)
            }
            _ => Test::Exact(field, v.to_owned()),
        }
    } else if rest.is_empty() {
        Test::Present(field)
    } else {
        match field.ty() {
            FieldType::Number => {
                if let Some((lo, hi)) = rest.split_once("..") {
                    let bound = |s: &str| -> Result<Option<i64>, ParseError> {
                        if s.is_empty() {
                            Ok(None)
                        } else {
                            parse_number(s).map(Some).ok_or_else(|| {
                                err(format!("range bound `{s}` is not a whole number"))
                            })
                        }
                    };
                    let (lo, hi) = (bound(lo)?, bound(hi)?);
                    if lo.is_none() && hi.is_none() {
                        return Err(err(
                            "a range needs at least one bound, e.g. 1990..1999".into()
                        ));
                    }
                    Test::Range(field, lo, hi)
                } else {
                    Test::Equal(
                        field,
                        parse_number(rest).ok_or_else(|| {
                            err(format!(
                                "`{}` takes a number or a range like 10..20",
                                field.name()
                            ))
                        })?,
                    )
                }
            }
            FieldType::Bool => {
                Test::Bool(field, parse_bool(rest).ok_or_else(|| err(bool_msg(field)))?)
            }
            _ if field == Field::Path && rest.starts_with('/') => {
                let dir = rest.trim_end_matches('/');
                Test::Subtree(if dir.is_empty() {
                    b"/".to_vec()
                } else {
                    dir.as_bytes().to_vec()
                })
            }
            _ => Test::Substring(field, Needle::new(rest)),
        }
    };
    Ok(Term { negate, test })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn bool_msg(f: Field) -> String {
    format!("`{}` takes true or false", f.name())
}

/// Parses query terms (as separate arguments). A `,` argument, or a term ending in `,`, starts
/// a new OR group.
pub fn parse<S: AsRef<str>>(terms: &[S]) -> Result<Query, ParseError> {
    let terms: Vec<&std::ffi::OsStr> = terms.iter().map(|t| t.as_ref().as_ref()).collect();
    parse_args(&terms)
}

/// [`parse`] for command-line arguments, which need not be UTF-8: a path is bytes, so a
/// `path:/DIR` term (or `^path:/DIR`) takes a directory whose name is not UTF-8 exactly. Any
/// other term must be UTF-8.
pub fn parse_args<S: AsRef<std::ffi::OsStr>>(terms: &[S]) -> Result<Query, ParseError> {
    use std::os::unix::ffi::OsStrExt;
    let mut groups = vec![Vec::new()];
    for t in terms {
        let raw = t.as_ref().as_bytes();
        let Ok(t) = std::str::from_utf8(raw) else {
            let (body, close) = match raw.strip_suffix(b",") {
                Some(body) => (body, true),
                None => (raw, false),
            };
            let (negate, body) = match body.strip_prefix(b"^") {
                Some(rest) => (true, rest),
                None => (false, body),
            };
            let Some(dir) = body.strip_prefix(b"path:").filter(|d| d.starts_with(b"/")) else {
                return Err(ParseError {
                    term: String::from_utf8_lossy(raw).into_owned(),
                    message: "is not UTF-8; only a `path:/DIR` term may hold bytes that are not"
                        .into(),
                });
            };
            let dir = match dir.iter().rposition(|&b| b != b'/') {
                Some(end) => dir[..=end].to_vec(),
                None => b"/".to_vec(),
            };
            groups.last_mut().expect("never empty").push(Term {
                negate,
                test: Test::Subtree(dir),
            });
            if close {
                groups.push(Vec::new());
            }
            continue;
        };
        if t == "," {
            groups.push(Vec::new());
            continue;
        }
        let (t, close) = match t.strip_suffix(',') {
            Some(body) if !body.is_empty() && !body.ends_with(':') => (body, true),
            _ => (t, false),
        };
        groups.last_mut().expect("never empty").push(parse_term(t)?);
        if close {
            groups.push(Vec::new());
        }
    }
    if groups.len() > 1 && groups.iter().any(Vec::is_empty) {
        return Err(ParseError {
            term: ",".into(),
            message: "an OR group is empty: put terms on both sides of `,`".into(),
        });
    }
    if groups.len() == 1 && groups[0].is_empty() {
        groups.clear();
    }
    Ok(Query { groups })
}

#[cfg(test)]
mod tests {

    proptest::proptest! {
        #[test]
        fn folding_by_character_equals_folding_the_string(s in "[a-zA-Z0-9 ßſKİﬁÅÉé夜\u{0130}\u{212A}]{0,12}") {
            let mut buf = String::new();
            fold_into(&s, &mut buf);
            proptest::prop_assert_eq!(buf, caseless::default_case_fold_str(&s));
        }

        #[test]
        fn needles_match_as_folding_both_sides_does(
            hay in "[a-zA-Z ßſKİﬁÅé\u{212A}]{0,12}",
            needle in "[a-zA-Zsfi ßé]{1,4}",
        ) {
            let expected = caseless::default_case_fold_str(&hay)
                .contains(&caseless::default_case_fold_str(&needle));
            proptest::prop_assert_eq!(Needle::new(&needle).found_in(&hay), expected);
        }
    }

    use super::*;

    fn one(t: &str) -> Test {
        let q = parse(&[t]).expect("parses");
        q.groups[0][0].test.clone()
    }

    #[test]
    fn a_path_term_takes_bytes_that_are_not_utf8_and_no_other_term_does() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let arg = |b: &'static [u8]| OsStr::from_bytes(b);
        let q = parse_args(&[
            arg(b"path:/m/d\xfe/"),
            arg(b"^path:/m/d\xfe/x,"),
            arg(b"year:1990"),
        ])
        .expect("parses");
        assert_eq!(q.groups.len(), 2);
        assert!(matches!(&q.groups[0][0].test, Test::Subtree(d) if d == b"/m/d\xfe"));
        assert!(q.groups[0][1].negate);
        assert!(matches!(&q.groups[0][1].test, Test::Subtree(d) if d == b"/m/d\xfe/x"));
        assert!(matches!(
            q.groups[1][0].test,
            Test::Equal(Field::Year, 1990)
        ));
        let e = parse_args(&[arg(b"title:\xfe")]).expect_err("refused");
        assert!(e.message.contains("not UTF-8"), "{e}");
        assert!(parse_args(&[arg(b"path:rel\xfe")]).is_err());
    }

    #[test]
    fn every_form_parses() {
        assert!(matches!(one("beatles"), Test::Any(_)));
        assert!(matches!(
            one("artist:beat"),
            Test::Substring(Field::Artist, _)
        ));
        assert!(matches!(
            one("artist:=The Beatles"),
            Test::Exact(Field::Artist, _)
        ));
        assert!(matches!(one("title::^A.*z$"), Test::Regex(Field::Title, _)));
        assert!(matches!(
            one("year:1990..1999"),
            Test::Range(Field::Year, Some(1990), Some(1999))
        ));
        assert!(matches!(
            one("duration_ms:..240000"),
            Test::Range(Field::DurationMs, None, Some(240000))
        ));
        assert!(matches!(
            one("size:1000000.."),
            Test::Range(Field::Size, Some(1000000), None)
        ));
        assert!(matches!(one("year:1999"), Test::Equal(Field::Year, 1999)));
        assert!(matches!(one("path:/a/b/"), Test::Subtree(ref p) if p == b"/a/b"));
        assert!(matches!(one("path:abc"), Test::Substring(Field::Path, _)));
        assert!(matches!(one("error:"), Test::Present(Field::Error)));
        assert!(matches!(
            one("has_cover:true"),
            Test::Bool(Field::HasCover, true)
        ));
        assert!(matches!(one("kind:audio"), Test::Substring(Field::Kind, _)));
        assert!(parse(&["^artist:x"]).expect("parses").groups[0][0].negate);
        assert!(matches!(one("Re: Stacks"), Test::Any(_)));
    }

    #[test]
    fn groups_split_on_commas() {
        let q = parse(&["a", "b", ",", "c"]).expect("parses");
        assert_eq!(
            q.groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let q = parse(&["a,", "c"]).expect("parses");
        assert_eq!(q.groups.len(), 2);
        assert!(parse::<&str>(&[]).expect("parses").groups.is_empty());
    }

    #[test]
    fn errors_name_the_term() {
        for bad in [
            "nope:x",
            "year:abc",
            "year:..",
            "year:1..x",
            "title::(",
            "has_cover:maybe",
            "^",
            ",",
        ] {
            let e = parse(&[bad]).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        let e = parse(&["path::["]).expect_err("an unclosed class");
        assert!(e.to_string().ends_with("unclosed character class"), "{e}");
        let e = parse(&["title::a{1000}{1000}"]).expect_err("too big");
        assert!(e.to_string().contains("make it simpler"), "{e}");
        assert!(parse(&["a", ",", ","]).is_err());
    }
}
