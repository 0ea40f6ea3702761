// Differential fuzzing of the public database API (`Db`, the schema
// builder, read and write transactions, every query, every write,
// conditional writes, commit/abort/drop, snapshots, change lists) against a
// model of plain `BTreeMap`s.
//
// Works on the stable toolchain with `--sanitizer none` (no nightly, no
// RUSTC_BOOTSTRAP), from the repository root:
//
//     cd fuzz && cargo fuzz run db_ops --sanitizer none -- -max_total_time=300
//
// (`cargo install cargo-fuzz` first.) A crash is saved under
// `fuzz/artifacts/db_ops/`; replay it with `cargo fuzz run db_ops
// --sanitizer none <artifact>`, print the decoded ops with `cargo fuzz fmt
// db_ops --sanitizer none <artifact>` and shrink it with `cargo fuzz tmin
// db_ops --sanitizer none <artifact>`.
//
// The harness (objects, schema, model, checks) is
// `tests/support/db_harness.rs`: two tables, each with a unique primary
// string index, a unique secondary index (optional; case-insensitive in the
// second table), a non-unique index, a multi-value index and a compound
// index, as in `tests/model.rs`. The contract checked: no panic on any
// input; every bad input (unique violation, failed condition, unlocked
// table, foreign handle, invalid schema, missing primary key) gives the
// predicted typed `pandodb::Error` and leaves the transaction unchanged;
// after every op every index of the open write transaction and of a fresh
// read equals its recomputation from the model; kept snapshots read back
// their model; commits have the predicted revision and tracked change
// lists replay the transaction. Keys are drawn so that they collide: empty
// strings, embedded 0x00, strings of a few hundred bytes, case-folding
// collisions (`K`/`k`/KELVIN SIGN, `Σ`/`σ`/`ς`, `İ`), prefixes of each other.

#![no_main]

use std::ops::Bound;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/db_harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{
    Arg, Finish, Harness, IxCase, IxKind, Obj, Op, QKind, RevSel, Role, SchemaCase, TableCase,
    Target, View, Write,
};

/// Most ops run for one input.
const MAX_OPS: usize = 300;
/// Longest next/next_back pattern.
const MAX_STEPS: usize = 12;

/// Strings picked whole: prefixes of each other, 0x00, case-folding
/// collisions (KELVIN SIGN folds to `k`, `İ` to two characters, final and
/// plain sigma).
const PICKS: [&str; 24] = [
    "", "a", "A", "ab", "aB", "abc", "b", "\0", "a\0", "a\0b", "\0\0", "\u{ff}", "k", "K",
    "\u{212a}", "\u{3a3}", "\u{3c3}", "\u{3c2}", "\u{130}", "i\u{307}", "\u{df}", "SS", "x", "X",
];

/// The alphabet of short strings.
const SMALL: [char; 6] = ['\0', 'a', 'A', 'b', '\u{3a3}', '\u{3c2}'];

#[derive(Arbitrary, Debug)]
enum FStr {
    Pick(u8),
    Small(Vec<u8>),
    /// `a` repeated (up to a few hundred bytes), then a short string.
    Long(u16, Vec<u8>),
    Any(String),
}

impl FStr {
    fn get(&self) -> String {
        let small = |b: &[u8]| -> String {
            b.iter()
                .take(5)
                .map(|x| SMALL[usize::from(x % 6)])
                .collect()
        };
        match self {
            FStr::Pick(i) => PICKS[usize::from(*i) % PICKS.len()].to_string(),
            FStr::Small(b) => small(b),
            FStr::Long(n, b) => {
                let mut s = "a".repeat(usize::from(n % 400));
                s.push_str(&small(b));
                s
            }
            FStr::Any(s) => {
                let mut end = s.len().min(48);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s[..end].to_string()
            }
        }
    }
}

fn grp(x: u8) -> i8 {
    match x {
        250..=252 => i8::MIN,
        253..=255 => i8::MAX,
        _ => (x % 5) as i8 - 2,
    }
}

fn small_n(x: u8) -> u8 {
    if x == 255 { 255 } else { x % 3 }
}

#[derive(Arbitrary, Debug)]
struct FObj {
    pk: FStr,
    uk: Option<FStr>,
    alias: FStr,
    grp: u8,
    tags: Vec<FStr>,
    n: u8,
}

impl FObj {
    fn get(&self) -> Obj {
        Obj {
            pk: self.pk.get(),
            uk: self.uk.as_ref().map(FStr::get),
            alias: self.alias.get(),
            grp: grp(self.grp),
            tags: self.tags.iter().take(4).map(FStr::get).collect(),
            n: small_n(self.n),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FArg {
    s: FStr,
    g: u8,
    n: u8,
}

impl FArg {
    fn get(&self) -> Arg {
        Arg {
            s: self.s.get(),
            g: grp(self.g),
            n: small_n(self.n),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FBound {
    Included(FArg),
    Excluded(FArg),
    Unbounded,
}

impl FBound {
    fn get(&self) -> Bound<Arg> {
        match self {
            FBound::Included(a) => Bound::Included(a.get()),
            FBound::Excluded(a) => Bound::Excluded(a.get()),
            FBound::Unbounded => Bound::Unbounded,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FIx {
    Pk,
    Uk,
    Grp,
    Tags,
    Comp,
    Lead,
}

impl FIx {
    fn get(self) -> harness::Ix {
        match self {
            FIx::Pk => harness::Ix::Pk,
            FIx::Uk => harness::Ix::Uk,
            FIx::Grp => harness::Ix::Grp,
            FIx::Tags => harness::Ix::Tags,
            FIx::Comp => harness::Ix::Comp,
            FIx::Lead => harness::Ix::Lead,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FRev {
    Current,
    Plus(u8),
    Minus(u8),
    Raw(u64),
}

impl FRev {
    fn get(self) -> RevSel {
        match self {
            FRev::Current => RevSel::Current,
            FRev::Plus(d) => RevSel::Plus(d),
            FRev::Minus(d) => RevSel::Minus(d),
            FRev::Raw(r) => RevSel::Raw(r),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FWrite {
    Insert(FObj),
    InsertIfAbsent(FObj),
    UpdateIf(FObj, FRev),
    /// `update_if` of an existing row's primary key (a fresh object
    /// otherwise), so that right revisions are frequent.
    UpdateExisting(FObj, FRev),
    Delete(FStr),
    DeleteIf(FStr, FRev),
    DeleteAll(FIx, FArg),
    DeletePrefix(FIx, FArg),
}

impl FWrite {
    fn get(&self) -> Write {
        match self {
            FWrite::Insert(o) => Write::Insert(o.get()),
            FWrite::InsertIfAbsent(o) => Write::InsertIfAbsent(o.get()),
            FWrite::UpdateIf(o, r) | FWrite::UpdateExisting(o, r) => {
                Write::UpdateIf(o.get(), r.get())
            }
            FWrite::Delete(s) => Write::Delete(s.get()),
            FWrite::DeleteIf(s, r) => Write::DeleteIf(s.get(), r.get()),
            FWrite::DeleteAll(ix, a) => Write::DeleteAll(ix.get(), a.get()),
            FWrite::DeletePrefix(ix, a) => Write::DeletePrefix(ix.get(), a.get()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FTarget {
    Open,
    OneShot(u8, bool),
}

#[derive(Arbitrary, Debug)]
enum FKind {
    Get,
    First,
    Last,
    Iter,
    All,
    Prefix,
    LowerBound,
    ReverseLowerBound,
    Range(FBound, FBound),
    Count,
    CountPrefix,
    IndexLen,
    LongestPrefix,
    GetVersioned,
    GetRef,
    IterRef,
    AllRef,
    LowerBoundRef,
    ModifiedSince(u8),
    Len,
}

impl FKind {
    fn get(&self) -> QKind {
        match self {
            FKind::Get => QKind::Get,
            FKind::First => QKind::First,
            FKind::Last => QKind::Last,
            FKind::Iter => QKind::Iter,
            FKind::All => QKind::All,
            FKind::Prefix => QKind::Prefix,
            FKind::LowerBound => QKind::LowerBound,
            FKind::ReverseLowerBound => QKind::ReverseLowerBound,
            FKind::Range(lo, hi) => QKind::Range(lo.get(), hi.get()),
            FKind::Count => QKind::Count,
            FKind::CountPrefix => QKind::CountPrefix,
            FKind::IndexLen => QKind::IndexLen,
            FKind::LongestPrefix => QKind::LongestPrefix,
            FKind::GetVersioned => QKind::GetVersioned,
            FKind::GetRef => QKind::GetRef,
            FKind::IterRef => QKind::IterRef,
            FKind::AllRef => QKind::AllRef,
            FKind::LowerBoundRef => QKind::LowerBoundRef,
            FKind::ModifiedSince(r) => QKind::ModifiedSince(u64::from(*r)),
            FKind::Len => QKind::Len,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FView {
    Open,
    Fresh,
    Snap(u8),
}

#[derive(Arbitrary, Debug)]
enum FIxKind {
    String,
    StringCi,
    OptString,
    Strings,
    Grp,
    Comp,
}

#[derive(Arbitrary, Debug)]
struct FIxCase {
    /// 0: primary, 1: unique, else non-unique.
    role: u8,
    name: u8,
    kind: FIxKind,
}

#[derive(Arbitrary, Debug)]
struct FTableCase {
    name: u8,
    indexes: Vec<FIxCase>,
    foreign: bool,
}

#[derive(Arbitrary, Debug)]
struct FSchemaCase {
    tables: Vec<FTableCase>,
    order: Vec<u8>,
    objs: Vec<FObj>,
}

const TABLE_NAMES: [&str; 4] = ["t", "u", "", "t"];
const INDEX_NAMES: [&str; 5] = ["id", "a", "b", "", "id"];

impl FSchemaCase {
    fn get(&self) -> SchemaCase {
        SchemaCase {
            tables: self
                .tables
                .iter()
                .take(4)
                .map(|t| TableCase {
                    name: TABLE_NAMES[usize::from(t.name) % TABLE_NAMES.len()].into(),
                    indexes: t
                        .indexes
                        .iter()
                        .take(5)
                        .map(|c| IxCase {
                            role: match c.role % 4 {
                                0 => Role::Primary,
                                1 => Role::Unique,
                                _ => Role::Index,
                            },
                            name: INDEX_NAMES[usize::from(c.name) % INDEX_NAMES.len()].into(),
                            kind: match c.kind {
                                FIxKind::String => IxKind::String,
                                FIxKind::StringCi => IxKind::StringCi,
                                FIxKind::OptString => IxKind::OptString,
                                FIxKind::Strings => IxKind::Strings,
                                FIxKind::Grp => IxKind::Grp,
                                FIxKind::Comp => IxKind::Comp,
                            },
                        })
                        .collect(),
                    foreign: t.foreign,
                })
                .collect(),
            order: self
                .order
                .iter()
                .take(6)
                .map(|&i| usize::from(i % 5))
                .collect(),
            objs: self.objs.iter().take(6).map(FObj::get).collect(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FOp {
    Begin {
        mask: u8,
        track: bool,
        twice: bool,
    },
    Write {
        table: bool,
        w: FWrite,
        target: FTarget,
    },
    Commit,
    Abort,
    Drop,
    Query {
        view: FView,
        table: bool,
        ix: FIx,
        kind: FKind,
        arg: FArg,
        steps: Vec<bool>,
    },
    Snapshot,
    CheckSnap(u8),
    DropSnap(u8),
    Foreign(bool),
    Schema(FSchemaCase),
}

fuzz_target!(|ops: Vec<FOp>| {
    let mut h = Harness::new();
    for op in ops.iter().take(MAX_OPS) {
        let op = match op {
            FOp::Begin { mask, track, twice } => Op::Begin {
                mask: mask % 4,
                track: *track,
                twice: *twice,
            },
            FOp::Write { table, w, target } => {
                let table = usize::from(*table);
                let existing = matches!(w, FWrite::UpdateExisting(..));
                let mut w = w.get();
                if let (true, Write::UpdateIf(o, _)) = (existing, &mut w)
                    && let Some(pk) = h.some_pk(table, o.pk.len())
                {
                    o.pk = pk;
                }
                Op::Write {
                    table,
                    w,
                    target: match target {
                        FTarget::Open => Target::Open,
                        FTarget::OneShot(f, track) => Target::OneShot {
                            finish: match f % 4 {
                                0 => Finish::Abort,
                                1 => Finish::Drop,
                                _ => Finish::Commit,
                            },
                            track: *track,
                        },
                    },
                }
            }
            FOp::Commit => Op::Commit,
            FOp::Abort => Op::Abort,
            FOp::Drop => Op::Drop,
            FOp::Query {
                view,
                table,
                ix,
                kind,
                arg,
                steps,
            } => Op::Query {
                view: match view {
                    FView::Open => View::Open,
                    FView::Fresh => View::Fresh,
                    FView::Snap(i) => View::Snap(usize::from(*i)),
                },
                table: usize::from(*table),
                ix: ix.get(),
                kind: kind.get(),
                arg: arg.get(),
                steps: steps.iter().take(MAX_STEPS).copied().collect(),
            },
            FOp::Snapshot => Op::Snapshot,
            FOp::CheckSnap(i) => Op::CheckSnap(usize::from(*i)),
            FOp::DropSnap(i) => Op::DropSnap(usize::from(*i)),
            FOp::Foreign(t) => Op::Foreign {
                table: usize::from(*t),
            },
            FOp::Schema(c) => {
                harness::schema_case(&c.get());
                continue;
            }
        };
        h.step(&op);
        h.check();
    }
    h.finish();
});
