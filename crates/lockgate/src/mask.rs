//! Masking rules for snapshots (`snapshot create --mask users.email=email,…`): which
//! columns are replaced, by what, checked against each table before anything is read.
//!
//! # Determinism
//!
//! A masked value is a function of the salt, the rule and the input value only, never
//! of the table or column it sits in: the same e-mail in `users.email` and in
//! `orders.email` masks to the same text, so joins on masked columns still match.
//! Every rule is keyed with the snapshot's 32-byte salt through HMAC-SHA-256: without
//! the salt a masked value cannot be recomputed from a guessed input; with another
//! salt every value changes.
//!
//! # Rules (NULL stays NULL under every rule but `fixed`)
//!
//! - `null`: NULL. Refused on NOT NULL columns and on columns of the primary key or
//!   of a unique key (a key that turns NULL no longer tells rows apart).
//! - `hash`: by the column's kind. Text: the HMAC's hex, 32 characters (128 bits), or
//!   the column's maximum when it holds fewer (refused under 16 characters, 64 bits):
//!   every column of 32 characters or more gives the same text. Integers: a keyed
//!   permutation (a Feistel network with cycle walking), so distinct inputs always
//!   give distinct outputs, no collision at all, and each value stays within its
//!   magnitude class (the ranges between 0, ±2^7, 2^8, ±2^15, 2^16, ±2^23, 2^24, ±2^31,
//!   2^32 and ±2^63): an output fits every integer column, signed or unsigned, that
//!   the input fits, whatever the column, which keeps joins between an `int` key and
//!   a `bigint` reference. Bytes: the digest (32 bytes; fewer when the column holds
//!   fewer, refused under 8; exactly `n`, extended, for a BINARY(n)). UUIDs: a
//!   version-4 UUID from the digest (122 bits). Other kinds are refused.
//! - `email`: `u<16 hex>@example.invalid` (33 characters, 64 bits of hash; the
//!   `.invalid` top-level domain never delivers).
//! - `name`: a first and a last name picked by the hash, then always a 14-hex suffix
//!   (`Ada Moreau 3f9a0c1b2d4e5f`, 66 bits in all): always, not only on unique
//!   columns, so the output does not depend on the column.
//! - `phone`: `+1 555 01DD DDDD DDDD DDDD DDDD`, 18 digits from the hash (59.8 bits), in
//!   the range set aside for fiction.
//! - `fixed:VALUE`: VALUE, for every row (NULLs included); it must parse for the
//!   column's kind, and is refused on a column of the primary key or a unique key.
//! - `keep`: the value as it is (states that a column was looked at and left alone).
//!
//! # Uniqueness
//!
//! `hash` on integers is collision-free. The other rules are hashes: two distinct
//! inputs collide with probability about n²/2^(b+1) for n distinct values and b bits:
//! for 1,000,000 values, about 3·10^-8 for `email` (b = 64), 7·10^-9 for `name`
//! (b = 66), 5·10^-7 for `phone` (b ≈ 59.8), 1.5·10^-27 for `hash` on 32-character
//! text (b = 128), 3·10^-8 on 16-character text (b = 64). A unique column masked with
//! one of them stays unique unless that improbable collision happens, which the
//! restore's unique constraint would then report.

use lockgate_core::{Kind, Table, TableName, TextForm, Value};
use sha2::{Digest, Sha256};

/// What replaces a column's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskRule {
    /// NULL.
    Null,
    /// A keyed hash fitted to the column's kind.
    Hash,
    /// `u<hex>@example.invalid`.
    Email,
    /// A first and a last name, with a hash suffix.
    Name,
    /// A fictional phone number.
    Phone,
    /// This value (as text, typed for the column) in every row.
    Fixed(String),
    /// The value as it is.
    Keep,
}

/// The rules, as `--mask` spells them (for messages).
const RULES: &str = "null, hash, email, name, phone, fixed:VALUE, keep";

impl MaskRule {
    /// Parses a rule as `--mask` spells it (`email`, `fixed:n/a`); names are
    /// case-insensitive, a fixed value is taken as written.
    pub fn parse(input: &str) -> Option<MaskRule> {
        if let Some((name, value)) = input.split_once(':') {
            return name
                .trim()
                .eq_ignore_ascii_case("fixed")
                .then(|| MaskRule::Fixed(value.to_string()));
        }
        Some(match input.trim().to_ascii_lowercase().as_str() {
            "null" => MaskRule::Null,
            "hash" => MaskRule::Hash,
            "email" => MaskRule::Email,
            "name" => MaskRule::Name,
            "phone" => MaskRule::Phone,
            "keep" => MaskRule::Keep,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MaskRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaskRule::Null => f.write_str("null"),
            MaskRule::Hash => f.write_str("hash"),
            MaskRule::Email => f.write_str("email"),
            MaskRule::Name => f.write_str("name"),
            MaskRule::Phone => f.write_str("phone"),
            MaskRule::Fixed(v) => write!(f, "fixed:{v}"),
            MaskRule::Keep => f.write_str("keep"),
        }
    }
}

/// One `TABLE.COLUMN=RULE` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskSpec {
    /// The table as the user wrote it, maybe schema-qualified (`public.users`).
    pub table: String,
    /// The column as the user wrote it.
    pub column: String,
    /// The rule.
    pub rule: MaskRule,
}

/// Why masks cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// A bad entry, or a rule a column cannot take, found before anything is read
    /// (exit 2).
    #[error("{0}")]
    Input(String),
}

impl MaskError {
    /// ARCHITECTURE.md's exit code: 2, bad input found before writing.
    pub fn exit_code(&self) -> i32 {
        match self {
            MaskError::Input(_) => 2,
        }
    }
}

/// Splits at commas not escaped as `\,` (which become commas; other backslashes
/// stay as they are).
fn split_entries(input: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                out.last_mut().expect("one").push(',');
            }
            ',' => out.push(String::new()),
            c => out.last_mut().expect("one").push(c),
        }
    }
    out
}

/// Parses `users.email=email,users.name=name,payments.card=hash,users.note=fixed:n/a`.
/// A value after `fixed:` is taken as written up to the next unescaped comma (it may
/// hold `=` and `:`; a comma in it is written `\,`). A table may be schema-qualified
/// (`public.users.email`: the column is after the last dot before `=`). Empty entries
/// (a trailing comma) are skipped. An error names the bad entry and lists the rules.
pub fn parse_masks(input: &str) -> Result<Vec<MaskSpec>, MaskError> {
    let mut out = Vec::new();
    for entry in split_entries(input) {
        if entry.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            MaskError::Input(format!(
                "mask {:?} {why}: write TABLE.COLUMN=RULE, with RULE one of {RULES}",
                entry.trim()
            ))
        };
        let (target, rule) = entry.split_once('=').ok_or_else(|| bad("has no '='"))?;
        let (table, column) = target
            .trim()
            .rsplit_once('.')
            .filter(|(t, c)| !t.trim().is_empty() && !c.trim().is_empty())
            .ok_or_else(|| bad("does not name TABLE.COLUMN before '='"))?;
        let rule = MaskRule::parse(rule.trim_start()).ok_or_else(|| bad("has an unknown rule"))?;
        out.push(MaskSpec {
            table: table.trim().to_string(),
            column: column.trim().to_string(),
            rule,
        });
    }
    Ok(out)
}

/// Whether a mask's table names `name`: exactly (a name without schema matches any
/// schema), or regardless of case. Erring towards a match masks more, never less.
pub fn names_table(spec_table: &str, name: &TableName) -> bool {
    let wanted = TableName::parse(spec_table);
    wanted.same_as(name)
        || (wanted.name.eq_ignore_ascii_case(&name.name)
            && match (&wanted.schema, &name.schema) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            })
}

/// Checks that every mask names one of `tables` (the tables a snapshot takes): an
/// error lists the masks that name none, and the tables.
pub fn check_tables(specs: &[MaskSpec], tables: &[TableName]) -> Result<(), MaskError> {
    let unknown: Vec<String> = specs
        .iter()
        .filter(|s| !tables.iter().any(|t| names_table(&s.table, t)))
        .map(|s| format!("{}.{}={}", s.table, s.column, s.rule))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    Err(MaskError::Input(format!(
        "mask {} names a table the snapshot does not take; its tables: {}",
        unknown.join(", "),
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// The names a `name` mask picks from (ASCII, so characters and bytes agree).
const FIRST_NAMES: [&str; 32] = [
    "Ada", "Ben", "Clara", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya", "Noah",
    "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wim", "Xena", "Yusuf", "Zoe", "Anouk", "Bruno",
    "Chloe", "Dario", "Emma", "Felix",
];
const LAST_NAMES: [&str; 32] = [
    "Moreau",
    "Jensen",
    "Novak",
    "Garcia",
    "Okafor",
    "Tanaka",
    "Silva",
    "Kowalski",
    "Dubois",
    "Rossi",
    "Nguyen",
    "Larsen",
    "Petrov",
    "Haddad",
    "Murphy",
    "Schmidt",
    "Costa",
    "Ivanova",
    "Bakker",
    "Lindqvist",
    "Mensah",
    "Weber",
    "Fischer",
    "Horvat",
    "Yilmaz",
    "Kim",
    "Sato",
    "Meyer",
    "Berg",
    "Adeyemi",
    "Ortiz",
    "Walsh",
];
/// Hex digits after a masked name.
const NAME_SUFFIX: usize = 14;
/// Hex digits in a masked e-mail's local part.
const EMAIL_HEX: usize = 16;
const EMAIL_DOMAIN: &str = "@example.invalid";
/// Hash digits in a masked phone number, after `+1 555 01`.
const PHONE_DIGITS: usize = 18;
/// Hex digits of `hash` on text when the column holds that many, and the fewest.
const HASH_HEX: usize = 32;
const HASH_HEX_MIN: usize = 16;
/// Bytes of `hash` on bytes when the column holds that many, and the fewest.
const HASH_BYTES: usize = 32;
const HASH_BYTES_MIN: usize = 8;

fn name_len() -> usize {
    let longest = |l: &[&str]| l.iter().map(|s| s.len()).max().unwrap_or(0);
    longest(&FIRST_NAMES) + 1 + longest(&LAST_NAMES) + 1 + NAME_SUFFIX
}

fn email_len() -> usize {
    1 + EMAIL_HEX + EMAIL_DOMAIN.len()
}

fn phone_len() -> usize {
    "+1 555 01".len() + 2 + (PHONE_DIGITS - 2) / 4 * 5
}

/// What a planned mask writes.
#[derive(Clone, Debug)]
enum Out {
    Null,
    Fixed(Value),
    Email,
    Name,
    Phone,
    /// Hex text of this many characters.
    Hex(usize),
    /// The keyed integer permutation.
    Int,
    /// This many digest bytes.
    Bytes(usize),
    Uuid,
    /// By the value's own type (a column without a declared type: SQLite's `any`).
    ByValue,
}

#[derive(Clone, Debug)]
struct Op {
    index: usize,
    column: String,
    rule: MaskRule,
    out: Out,
}

/// HMAC-SHA-256 keyed with the salt, its two padded key blocks absorbed once.
#[derive(Clone)]
struct Keyed {
    inner: Sha256,
    outer: Sha256,
}

impl Keyed {
    fn new(salt: &[u8; 32]) -> Keyed {
        let mut inner_pad = [0x36u8; 64];
        let mut outer_pad = [0x5cu8; 64];
        for (i, k) in salt.iter().enumerate() {
            inner_pad[i] ^= k;
            outer_pad[i] ^= k;
        }
        Keyed {
            inner: Sha256::new().chain_update(inner_pad),
            outer: Sha256::new().chain_update(outer_pad),
        }
    }

    /// The HMAC of the parts, each preceded by its length (so no two lists of parts
    /// hash alike).
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for p in parts {
            inner.update((p.len() as u64).to_be_bytes());
            inner.update(p);
        }
        let digest = self.outer.clone().chain_update(inner.finalize()).finalize();
        let mut out = [0u8; 32];
        out.copy_from_slice(&digest);
        out
    }
}

/// The masks of one table, checked against it ([`plan`]).
#[derive(Clone)]
pub struct TableMask {
    table: TableName,
    ops: Vec<Op>,
    key: Keyed,
}

impl std::fmt::Debug for TableMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The salt's states stay out of logs.
        f.debug_struct("TableMask")
            .field("table", &self.table)
            .field("masks", &self.describe())
            .finish()
    }
}

/// Whether the column is in the primary key or a unique key.
fn in_unique_key(table: &Table, column: &str) -> bool {
    table.unique_keys().iter().any(|k| k.iter().any(|c| c == column))
}

/// The most characters a text column holds (the smaller of its limits), or None.
fn text_room(kind: &Kind) -> Option<u64> {
    match kind {
        Kind::Text {
            max_chars, max_bytes, ..
        } => match (max_chars, max_bytes) {
            (Some(c), Some(b)) => Some((*c).min(*b)),
            (c, b) => c.or(*b),
        },
        _ => None,
    }
}

/// Whether a column takes any text a mask writes (free text or `char(n)`, or no
/// declared type), not only labels.
fn takes_text(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Any
            | Kind::Text {
                form: TextForm::Free | TextForm::Padded,
                ..
            }
    )
}

/// The masks of one table (those of `specs` that name it; the others are ignored,
/// see [`check_tables`]), checked against it: an unknown column (the columns are
/// listed), a column masked twice, a rule the column's kind cannot hold (`email`,
/// `name` and `phone` need text long enough, and the length is said; `hash` fits
/// text, bytes, integers and UUIDs; `fixed:VALUE` must parse for the kind and is
/// refused on a key column; `null` is refused on NOT NULL and key columns). Every
/// problem of the table is listed in one [`MaskError::Input`], each naming
/// `table.column` and the rule.
pub fn plan(table: &Table, specs: &[MaskSpec], salt: &[u8; 32]) -> Result<TableMask, MaskError> {
    let mut ops: Vec<Op> = Vec::new();
    let mut problems = Vec::new();
    for spec in specs.iter().filter(|s| names_table(&s.table, &table.name)) {
        let at = format!("{}.{}={}", table.name, spec.column, spec.rule);
        let Some(index) = table.column_index(&spec.column) else {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            problems.push(format!("mask {at}: no such column; its columns: {}", names.join(", ")));
            continue;
        };
        let column = &table.columns[index];
        if ops.iter().any(|o| o.index == index) {
            problems.push(format!(
                "mask {at}: column {} is masked twice: keep one rule",
                column.name
            ));
            continue;
        }
        let kind = &column.kind;
        let text_of = |needed: usize| -> Result<(), String> {
            if !takes_text(kind) {
                return Err(format!(
                    "needs a text column, and {} is {}",
                    column.name,
                    kind.describe()
                ));
            }
            match text_room(kind) {
                Some(room) if room < needed as u64 => Err(format!(
                    "needs room for {needed} characters, and {} holds {room}: widen it, or use hash, fixed:VALUE or null",
                    column.name
                )),
                _ => Ok(()),
            }
        };
        let out = match &spec.rule {
            MaskRule::Keep => continue,
            MaskRule::Null => {
                if !column.nullable {
                    Err(format!("{} is NOT NULL: use hash or fixed:VALUE", column.name))
                } else if in_unique_key(table, &column.name) {
                    Err(format!(
                        "{} is in the primary key or a unique key, which NULL would no longer tell apart: use hash",
                        column.name
                    ))
                } else {
                    Ok(Out::Null)
                }
            }
            MaskRule::Fixed(value) => {
                if in_unique_key(table, &column.name) {
                    Err(format!(
                        "{} is in the primary key or a unique key, which one value for every row would break: use hash",
                        column.name
                    ))
                } else {
                    kind.parse_text(value)
                        .map(Out::Fixed)
                        .map_err(|e| format!("{value:?} does not fit {} ({}): {e}", column.name, kind.describe()))
                }
            }
            MaskRule::Email => text_of(email_len()).map(|()| Out::Email),
            MaskRule::Name => text_of(name_len()).map(|()| Out::Name),
            MaskRule::Phone => text_of(phone_len()).map(|()| Out::Phone),
            MaskRule::Hash => match kind {
                Kind::Any => Ok(Out::ByValue),
                Kind::Int { .. } => Ok(Out::Int),
                Kind::Uuid => Ok(Out::Uuid),
                Kind::Bytes { max_bytes, fixed } => {
                    let room = max_bytes.map_or(HASH_BYTES, |m| m.min(usize::MAX as u64) as usize);
                    if room < HASH_BYTES_MIN {
                        Err(format!(
                            "needs room for {HASH_BYTES_MIN} bytes, and {} holds {room}: use fixed:VALUE or null",
                            column.name
                        ))
                    } else if *fixed {
                        Ok(Out::Bytes(room))
                    } else {
                        Ok(Out::Bytes(room.min(HASH_BYTES)))
                    }
                }
                k if takes_text(k) => {
                    let room = text_room(k).map_or(HASH_HEX, |r| r.min(HASH_HEX as u64) as usize);
                    if room < HASH_HEX_MIN {
                        Err(format!(
                            "needs room for {HASH_HEX_MIN} characters, and {} holds {room}: widen it, or use \
                             fixed:VALUE or null",
                            column.name
                        ))
                    } else {
                        Ok(Out::Hex(room))
                    }
                }
                k => Err(format!(
                    "fits text, bytes, integer and uuid columns, and {} is {}: use fixed:VALUE, null or keep",
                    column.name,
                    k.describe()
                )),
            },
        };
        match out {
            Ok(out) => ops.push(Op {
                index,
                column: column.name.clone(),
                rule: spec.rule.clone(),
                out,
            }),
            Err(why) => problems.push(format!("mask {at}: {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(MaskError::Input(problems.join("\n")));
    }
    ops.sort_by_key(|o| o.index);
    Ok(TableMask {
        table: table.name.clone(),
        ops,
        key: Keyed::new(salt),
    })
}

/// The bytes a value is hashed as: a type tag, then its content (texts as UTF-8,
/// integers as 8 big-endian bytes), so equal values hash alike in any column.
fn value_bytes(v: &Value) -> (u8, Vec<u8>) {
    match v {
        Value::Text(s) => (b't', s.as_bytes().to_vec()),
        Value::Int(i) => (b'i', i.to_be_bytes().to_vec()),
        Value::Bytes(b) => (b'b', b.clone()),
        Value::Uuid(u) => (b'u', u.as_bytes().to_vec()),
        other => (b'o', other.to_string().into_bytes()),
    }
}

fn hex(bytes: &[u8], digits: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digits);
    for b in bytes.iter().flat_map(|b| [b >> 4, b & 15]).take(digits) {
        out.push(HEX[b as usize] as char);
    }
    out
}

/// The bounds of the integer magnitude classes (module doc): an integer column of
/// any width and sign holds whole classes, so a value kept within its class fits.
const CLASS_BOUNDS: [i128; 15] = [
    i64::MIN as i128,
    -(1 << 31),
    -(1 << 23),
    -(1 << 15),
    -(1 << 7),
    0,
    1 << 7,
    1 << 8,
    1 << 15,
    1 << 16,
    1 << 23,
    1 << 24,
    1 << 31,
    1 << 32,
    i64::MAX as i128 + 1,
];

/// Feistel rounds of the integer permutation.
const ROUNDS: u8 = 8;

impl TableMask {
    /// Whether nothing is masked (no rule, or only `keep`).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Masks one row in place; `row` holds the table's columns in table order.
    pub fn apply(&self, row: &mut [Value]) {
        for op in &self.ops {
            let Some(v) = row.get_mut(op.index) else { continue };
            if let Out::Fixed(f) = &op.out {
                *v = f.clone();
            } else if !v.is_null() {
                *v = self.mask(&op.out, v);
            }
        }
    }

    /// The masked columns and their rules, in table order, `keep` left out (for the
    /// manifest), e.g. `[("email", "email")]`.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.ops
            .iter()
            .map(|o| (o.column.clone(), o.rule.to_string()))
            .collect()
    }

    fn digest(&self, rule: &str, v: &Value) -> [u8; 32] {
        let (tag, bytes) = value_bytes(v);
        self.key.mac(&[rule.as_bytes(), &[tag], &bytes])
    }

    fn mask(&self, out: &Out, v: &Value) -> Value {
        match out {
            Out::Null => Value::Null,
            Out::Fixed(f) => f.clone(),
            Out::Email => Value::Text(format!("u{}{EMAIL_DOMAIN}", hex(&self.digest("email", v), EMAIL_HEX))),
            Out::Name => {
                let d = self.digest("name", v);
                Value::Text(format!(
                    "{} {} {}",
                    FIRST_NAMES[d[0] as usize % FIRST_NAMES.len()],
                    LAST_NAMES[d[1] as usize % LAST_NAMES.len()],
                    hex(&d[2..], NAME_SUFFIX)
                ))
            }
            Out::Phone => {
                let d = self.digest("phone", v);
                // 18 decimal digits from 64 bits, below 10^18 (a slight bias, no loss of
                // distinctness beyond the stated odds).
                let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % 1_000_000_000_000_000_000;
                let digits = format!("{n:0width$}", width = PHONE_DIGITS);
                let mut s = format!("+1 555 01{}", &digits[..2]);
                for group in digits.as_bytes()[2..].chunks(4) {
                    s.push(' ');
                    s.push_str(std::str::from_utf8(group).expect("digits"));
                }
                Value::Text(s)
            }
            Out::Hex(n) => Value::Text(hex(&self.digest("hash", v), *n)),
            Out::Int => match v {
                Value::Int(i) => Value::Int(self.permute(*i)),
                other => Value::Text(hex(&self.digest("hash", other), HASH_HEX)),
            },
            Out::Bytes(n) => Value::Bytes(self.stream("hash", v, *n)),
            Out::Uuid => {
                let d = self.digest("hash", v);
                let mut b = [0u8; 16];
                b.copy_from_slice(&d[..16]);
                Value::Uuid(uuid::Builder::from_random_bytes(b).into_uuid())
            }
            Out::ByValue => match v {
                Value::Int(_) => self.mask(&Out::Int, v),
                Value::Bytes(_) => self.mask(&Out::Bytes(HASH_BYTES), v),
                Value::Uuid(_) => self.mask(&Out::Uuid, v),
                _ => self.mask(&Out::Hex(HASH_HEX), v),
            },
        }
    }

    /// `n` bytes keyed on the value: the digest, then digests of a counter after it.
    fn stream(&self, rule: &str, v: &Value, n: usize) -> Vec<u8> {
        let (tag, bytes) = value_bytes(v);
        let mut out = Vec::with_capacity(n);
        let mut block = 0u64;
        while out.len() < n {
            let d = self.key.mac(&[rule.as_bytes(), &[tag], &bytes, &block.to_be_bytes()]);
            out.extend_from_slice(&d[..(n - out.len()).min(32)]);
            block += 1;
        }
        out
    }

    /// The keyed permutation of an integer within its magnitude class: a Feistel
    /// network over the smallest even number of bits that covers the class, walked
    /// again while the result falls outside it (a permutation walked this way stays
    /// one on the class; fewer than four steps on average).
    fn permute(&self, v: i64) -> i64 {
        let v = v as i128;
        let class = CLASS_BOUNDS
            .windows(2)
            .position(|w| w[0] <= v && v < w[1])
            .expect("every i64 has a class");
        let (low, high) = (CLASS_BOUNDS[class], CLASS_BOUNDS[class + 1]);
        let size = (high - low) as u128;
        let bits = (128 - (size - 1).leading_zeros()).max(2).next_multiple_of(2);
        let half = bits / 2;
        let mask = (1u128 << half) - 1;
        let mut x = (v - low) as u128;
        loop {
            let (mut l, mut r) = (x >> half, x & mask);
            for round in 0..ROUNDS {
                let f = self
                    .key
                    .mac(&[b"int", &[class as u8, round], &(r as u64).to_be_bytes()]);
                let f = u64::from_be_bytes(f[..8].try_into().expect("8 bytes")) as u128 & mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << half) | r;
            if x < size {
                return (low + x as i128) as i64;
            }
        }
    }
}
