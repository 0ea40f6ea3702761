//! `#[derive(Table)]` for [pandodb](https://docs.rs/pandodb): a table's
//! schema and its typed index handles, declared from a struct.
//!
//! Use it through the main crate with its `derive` feature: the derive macro
//! is re-exported as `pandodb::Table`, beside the `pandodb::Table<T>` handle
//! type (a derive macro lives in the macro namespace, as `serde::Serialize`
//! does beside the trait), so one `use pandodb::Table;` brings both.
//!
//! ```
//! use pandodb::{Db, Query, Schema, Table};
//!
//! #[derive(Table, Clone, serde::Serialize, serde::Deserialize)]
//! #[pandodb(table = "user", serde, index(name = "team_age", fields(team, age)))]
//! struct User {
//!     #[pandodb(primary)]
//!     id: String,
//!     #[pandodb(unique, case_insensitive)]
//!     email: String,
//!     team: String,
//!     #[pandodb(index, multi, name = "role")]
//!     roles: Vec<String>,
//!     age: i64,
//!     #[pandodb(index)]
//!     manager: Option<String>,
//! }
//!
//! let mut schema = Schema::builder();
//! let users: UserTable = User::declare(&mut schema)?;
//! let db = Db::new(schema.build()?);
//! // users.table: Table<User>; users.id, users.email, users.roles,
//! // users.manager: Index<User, str>; users.team_age: Index<User, (String, i64)>.
//! let mut w = db.write(&[&users.table]);
//! w.insert(&users.table, User {
//!     id: "ann".into(),
//!     email: "Ann@x.io".into(),
//!     team: "infra".into(),
//!     roles: vec!["dev".into()],
//!     age: 41,
//!     manager: None,
//! })?;
//! w.commit()?;
//! let r = db.read();
//! assert!(r.get(&users.email, "ann@X.io")?.is_some());
//! assert_eq!(r.count(&users.team_age.leading(), &("infra".to_string(),))?, 1);
//! assert_eq!(r.index_len(&users.manager)?, 0); // None: no key
//! # Ok::<(), pandodb::Error>(())
//! ```
//!
//! # What it generates
//!
//! For `struct User` (any visibility `V`):
//!
//! - `V struct UserTable { pub table: Table<User>, pub <handle>: Index<User, K>, ... }`,
//!   `Clone + Debug`: one handle per indexed field, named like the field,
//!   and one per struct-level (compound) index, named like the index;
//! - `impl User { V fn declare(&mut SchemaBuilder) -> pandodb::Result<UserTable> }`:
//!   declares the table and its indexes, in field order and then the
//!   struct-level indexes in attribute order, calls `serde()` and
//!   `version(N)` when asked, and adds the table to the schema;
//! - `impl User { V fn declare_with(&mut SchemaBuilder, impl FnOnce(&mut TableBuilder<User>)) -> ... }`:
//!   the same, calling the closure just before the table is added (for a
//!   `migrate` hook, or an index the derive does not express).
//!
//! # Attributes
//!
//! On the struct, in one or more `#[pandodb(...)]`:
//!
//! | attribute | meaning |
//! |---|---|
//! | `table = "name"` | the table's name (default: the struct's name in snake_case) |
//! | `serde` | `TableBuilder::serde()`: rows go to snapshots and the durable log |
//! | `version = N` | `TableBuilder::version(N)` |
//! | `index(name = "n", fields(a, b))` | a non-unique compound index on 2 to 4 fields, key `(A, B)` |
//! | `unique(name = "n", fields(a, b))` | a unique compound index |
//! | `primary(name = "n", fields(a, b))` | a compound primary index |
//! | `crate = "path"` | where pandodb is (default `::pandodb`) |
//!
//! On a field, one `#[pandodb(...)]` with exactly one of `primary`,
//! `unique`, `index`, and optionally:
//!
//! | attribute | meaning |
//! |---|---|
//! | `name = "n"` | the index's name (default: the field's name; the handle keeps the field's name) |
//! | `multi` | a `Vec<X>` field: one key per item |
//! | `case_insensitive` | a `String` field indexed with `Indexer::string_ci` |
//!
//! The field's type, as written, picks the indexer and the key type `K`:
//!
//! | field type | indexer | `K` |
//! |---|---|---|
//! | `String` | `Indexer::string` (`string_ci` with `case_insensitive`) | `str` |
//! | `Option<String>` | `Indexer::optional_string`: no key when `None` | `str` |
//! | `Vec<String>` with `multi` | `Indexer::strings` | `str` |
//! | `Vec<u8>` | `Indexer::bytes` | `[u8]` |
//! | `Option<X>` | `Indexer::optional`: no key when `None` | `X` |
//! | `Vec<X>` with `multi` | `Indexer::custom`, one key per item | `X` |
//! | any other `X: Encode + Clone` (integers, `bool`, `Uuid`, tuples) | `Indexer::value` | `X` |
//!
//! A compound index's key is the tuple of its fields' types (`String`
//! components stay `String`), built with `Indexer::value`, so it is queried
//! by a leading subset through `Index::leading`.
//!
//! Mistakes are compile errors pointing at the attribute or the field: an
//! unknown attribute, no primary index or two, `multi` on a field that is
//! not a `Vec`, a `Vec` without `multi`, `case_insensitive` on a field that
//! is not a `String`, a primary index on an `Option` or `multi` field, a
//! field type with no key encoding (floats, `char`, references, maps), two
//! indexes with one name, generics, enums and tuple structs.

#![warn(missing_docs)]

use std::collections::HashSet;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, Ident, LitInt, LitStr, Path, PathArguments, Type,
    parse_macro_input,
};

/// Declares a pandodb table from a struct: a `<Name>Table` struct of typed
/// handles and `Name::declare(&mut SchemaBuilder)`. See the crate docs for
/// the attributes.
#[proc_macro_derive(Table, attributes(pandodb))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Primary,
    Unique,
    Index,
}

impl Kind {
    fn from_ident(i: &Ident) -> Option<Kind> {
        match i.to_string().as_str() {
            "primary" => Some(Kind::Primary),
            "unique" => Some(Kind::Unique),
            "index" => Some(Kind::Index),
            _ => None,
        }
    }

    fn method(self) -> Ident {
        let name = match self {
            Kind::Primary => "primary",
            Kind::Unique => "unique",
            Kind::Index => "index",
        };
        Ident::new(name, Span::call_site())
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Primary => "primary",
            Kind::Unique => "unique",
            Kind::Index => "non-unique",
        }
    }
}

/// One index to declare, from a field or from a struct-level attribute.
struct Decl {
    kind: Kind,
    kind_span: Span,
    /// The index's name in the schema.
    name: String,
    name_span: Span,
    /// The handle struct's field.
    handle: Ident,
    /// The key type `K` of `Index<T, K>`.
    key: TokenStream2,
    /// An expression of type `Indexer<T, K>`.
    indexer: TokenStream2,
    /// What the handle's doc says the index is on.
    on: String,
}

/// Struct-level attributes.
#[derive(Default)]
struct TableAttrs {
    table: Option<LitStr>,
    serde: bool,
    version: Option<LitInt>,
    krate: Option<Path>,
    compounds: Vec<CompoundAttr>,
}

struct CompoundAttr {
    kind: Kind,
    kind_span: Span,
    name: Option<LitStr>,
    fields: Vec<Ident>,
}

/// Field-level attributes.
#[derive(Default)]
struct FieldAttrs {
    kind: Option<(Kind, Span)>,
    name: Option<LitStr>,
    multi: Option<Span>,
    case_insensitive: Option<Span>,
    /// The attribute itself, for errors about the whole of it.
    span: Option<Span>,
}

const TABLE_ATTRS: &str = "`table = \"..\"`, `serde`, `version = N`, `index(..)`, `unique(..)`, `primary(..)`, `crate = \"..\"`";
const FIELD_ATTRS: &str =
    "`primary`, `unique`, `index`, `multi`, `case_insensitive`, `name = \"..\"`";

/// Collects errors so that one expansion reports all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn parse_table_attrs(input: &DeriveInput, errors: &mut Errors) -> TableAttrs {
    let mut out = TableAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("pandodb")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(word) = meta.path.get_ident().map(Ident::to_string) else {
                return Err(meta.error(format!(
                    "unknown pandodb table attribute; expected one of {TABLE_ATTRS}"
                )));
            };
            match word.as_str() {
                "table" => out.table = Some(meta.value()?.parse()?),
                "serde" => out.serde = true,
                "version" => {
                    let v: LitInt = meta.value()?.parse()?;
                    v.base10_parse::<u32>()?;
                    out.version = Some(v);
                }
                "crate" => {
                    let s: LitStr = meta.value()?.parse()?;
                    out.krate = Some(s.parse()?);
                }
                "index" | "unique" | "primary" => {
                    let ident = meta.path.get_ident().expect("checked above");
                    let mut c = CompoundAttr {
                        kind: Kind::from_ident(ident).expect("one of the three"),
                        kind_span: ident.span(),
                        name: None,
                        fields: Vec::new(),
                    };
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("name") {
                            c.name = Some(inner.value()?.parse()?);
                        } else if inner.path.is_ident("fields") {
                            inner.parse_nested_meta(|f| match f.path.get_ident() {
                                Some(i) => {
                                    c.fields.push(i.clone());
                                    Ok(())
                                }
                                None => Err(f.error("expected a field name")),
                            })?;
                        } else {
                            return Err(inner.error(format!(
                                "unknown attribute in `{word}(..)`; expected `name = \"..\"` and `fields(..)`"
                            )));
                        }
                        Ok(())
                    })?;
                    out.compounds.push(c);
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown pandodb table attribute `{word}`; expected one of {TABLE_ATTRS}"
                    )));
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

fn parse_field_attrs(field: &syn::Field, errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("pandodb")) {
        if out.span.is_some() {
            errors.at(
                attr.span(),
                "one #[pandodb(..)] per field: a field has at most one index (declare more with a struct-level `index(name = .., fields(..))` or `declare_with`)",
            );
            continue;
        }
        out.span = Some(attr.span());
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(ident) = meta.path.get_ident() else {
                return Err(meta.error(format!(
                    "unknown pandodb field attribute; expected one of {FIELD_ATTRS}"
                )));
            };
            if let Some(kind) = Kind::from_ident(ident) {
                if let Some((first, _)) = out.kind {
                    return Err(meta.error(format!(
                        "a field has one index: it is already {} here",
                        first.method()
                    )));
                }
                out.kind = Some((kind, ident.span()));
                return Ok(());
            }
            match ident.to_string().as_str() {
                "name" => out.name = Some(meta.value()?.parse()?),
                "multi" => out.multi = Some(ident.span()),
                "case_insensitive" => out.case_insensitive = Some(ident.span()),
                other => {
                    return Err(meta.error(format!(
                        "unknown pandodb field attribute `{other}`; expected one of {FIELD_ATTRS}"
                    )));
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

/// The shape of a field's type, as written.
enum Shape<'a> {
    String,
    Option(&'a Type),
    Vec(&'a Type),
    Other,
}

/// The single type argument of a path type whose last segment is `name`.
fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(t)] => Some(t),
        _ => None,
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_ident(&g.elem),
        _ => None,
    }
}

fn is_plain(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == name && s.arguments.is_none()),
        Type::Group(g) => is_plain(&g.elem, name),
        _ => false,
    }
}

fn shape(ty: &Type) -> Shape<'_> {
    if let Type::Group(g) = ty {
        return shape(&g.elem);
    }
    if is_plain(ty, "String") {
        Shape::String
    } else if let Some(t) = generic_arg(ty, "Option") {
        Shape::Option(t)
    } else if let Some(t) = generic_arg(ty, "Vec") {
        Shape::Vec(t)
    } else {
        Shape::Other
    }
}

/// Why a type cannot be an index key, for the types known to have no
/// `Encode` implementation (others are left to the compiler's trait check).
fn no_key_encoding(ty: &Type) -> Option<String> {
    let why = match ty {
        Type::Reference(_) => "a borrowed field has no owned key; use an owned type".to_string(),
        Type::Array(_) | Type::Slice(_) => {
            "an array has no key encoding; use Vec<u8> (a byte string) or a Vec with `multi`"
                .to_string()
        }
        Type::Group(g) => return no_key_encoding(&g.elem),
        Type::Path(_) => match last_ident(ty).as_deref() {
            Some(f @ ("f32" | "f64")) => format!(
                "`{f}` has no order-preserving key encoding (pandodb::Encode); index an integer (e.g. a scaled value or `{f}::to_bits` of a non-negative value) instead"
            ),
            Some("char") => {
                "`char` has no key encoding (pandodb::Encode); use a String or a u32".to_string()
            }
            Some(m @ ("HashMap" | "BTreeMap" | "HashSet" | "BTreeSet")) => format!(
                "a `{m}` field is not indexed by the derive; declare it with `Indexer::map_keys` / `map_entries` / `custom` in `declare_with`"
            ),
            Some(o @ ("Option" | "Vec")) => format!(
                "`{o}` has no key encoding here: only a field's outermost `Option` (optional) or `Vec` (`multi`) is understood"
            ),
            _ => return None,
        },
        _ => "this type has no key encoding (pandodb::Encode)".to_string(),
    };
    Some(why)
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The declaration of a field's index, or `None` after reporting an error.
fn field_decl(
    ident: &Ident,
    field: &syn::Field,
    fa: &FieldAttrs,
    krate: &TokenStream2,
    errors: &mut Errors,
) -> Option<Decl> {
    let fname = field.ident.as_ref().expect("named fields only");
    let Some((kind, kind_span)) = fa.kind else {
        let span = fa.multi.or(fa.case_insensitive).or(fa.span)?;
        errors.at(
            span,
            "no index kind on this field: add `primary`, `unique` or `index`",
        );
        return None;
    };
    let ty = &field.ty;
    let ty_span = ty.span();
    let t = quote!(#ident);
    let cl = quote!(::core::clone::Clone::clone);
    let fail = |errors: &mut Errors, span: Span, msg: String| {
        errors.at(span, msg);
        None::<Decl>
    };
    if let Some(ci) = fa.case_insensitive
        && (!matches!(shape(ty), Shape::String) || fa.multi.is_some())
    {
        return fail(
            errors,
            ci,
            "`case_insensitive` is for a `String` field (Indexer::string_ci); pandodb has no case-insensitive optional or multi-value string indexer".into(),
        );
    }
    if kind == Kind::Primary && fa.multi.is_some() {
        return fail(
            errors,
            kind_span,
            "a primary index needs exactly one key per object: it cannot be `multi`".into(),
        );
    }
    let (key, indexer, what) = match (shape(ty), fa.multi) {
        (Shape::String, None) => {
            let ctor = if fa.case_insensitive.is_some() {
                quote!(string_ci)
            } else {
                quote!(string)
            };
            (
                quote!(str),
                quote!(#krate::Indexer::#ctor(|o: &#t| o.#fname.as_str())),
                if fa.case_insensitive.is_some() {
                    "case-insensitive string"
                } else {
                    "string"
                },
            )
        }
        (Shape::Vec(inner), None) if is_plain(inner, "u8") => (
            quote!([u8]),
            quote!(#krate::Indexer::bytes(|o: &#t| o.#fname.as_slice())),
            "byte string",
        ),
        (Shape::Vec(_), None) => {
            return fail(
                errors,
                ty_span,
                format!(
                    "a `Vec` field is indexed one key per item: add `multi` (#[pandodb({}, multi)])",
                    kind.method()
                ),
            );
        }
        (Shape::Option(_), _) if kind == Kind::Primary => {
            return fail(
                errors,
                kind_span,
                "a primary index needs exactly one key per object: it cannot be on an `Option` field".into(),
            );
        }
        (Shape::Option(inner), None) => {
            if is_plain(inner, "String") {
                (
                    quote!(str),
                    quote!(#krate::Indexer::optional_string(|o: &#t| o.#fname.as_deref())),
                    "optional string",
                )
            } else if let Some(why) = no_key_encoding(inner) {
                return fail(errors, inner.span(), why);
            } else {
                (
                    quote!(#inner),
                    quote_spanned!(ty_span=> #krate::Indexer::<#t, #inner>::optional(|o: &#t| #cl(&o.#fname))),
                    "optional",
                )
            }
        }
        (Shape::Vec(inner), Some(_)) => {
            if is_plain(inner, "String") {
                (
                    quote!(str),
                    quote!(#krate::Indexer::strings(|o: &#t| o.#fname.as_slice())),
                    "multi-value string",
                )
            } else if let Some(why) = no_key_encoding(inner) {
                return fail(errors, inner.span(), why);
            } else {
                (
                    quote!(#inner),
                    quote_spanned!(ty_span=> #krate::Indexer::<#t, #inner>::custom(
                        |o: &#t, keys: &mut #krate::KeySink<#inner>| {
                            for k in &o.#fname {
                                keys.add(k);
                            }
                        }
                    )),
                    "multi-value",
                )
            }
        }
        (_, Some(multi)) => {
            return fail(
                errors,
                multi,
                "`multi` is for a `Vec<_>` field (one key per item)".into(),
            );
        }
        (Shape::Other, None) => {
            if let Some(why) = no_key_encoding(ty) {
                return fail(errors, ty_span, why);
            }
            (
                quote!(#ty),
                quote_spanned!(ty_span=> #krate::Indexer::<#t, #ty>::value(|o: &#t| #cl(&o.#fname))),
                "value",
            )
        }
    };
    let (name, name_span) = match &fa.name {
        Some(n) => (n.value(), n.span()),
        None => (fname.to_string(), fname.span()),
    };
    Some(Decl {
        kind,
        kind_span,
        name,
        name_span,
        handle: fname.clone(),
        key,
        indexer,
        on: format!("{what} field `{fname}`"),
    })
}

/// The declaration of a struct-level (compound) index.
fn compound_decl(
    ident: &Ident,
    c: &CompoundAttr,
    fields: &[&syn::Field],
    krate: &TokenStream2,
    errors: &mut Errors,
) -> Option<Decl> {
    let Some(name) = &c.name else {
        errors.at(
            c.kind_span,
            "a struct-level index needs `name = \"..\"` (it also names the handle's field)",
        );
        return None;
    };
    let Ok(handle) = syn::parse_str::<Ident>(&name.value()) else {
        errors.at(
            name.span(),
            "a struct-level index's name must be a Rust identifier: it names the handle's field",
        );
        return None;
    };
    let handle = Ident::new(&handle.to_string(), name.span());
    if !(2..=4).contains(&c.fields.len()) {
        errors.at(
            c.kind_span,
            "a struct-level (compound) index has 2 to 4 fields: `fields(a, b)`",
        );
        return None;
    }
    let t = quote!(#ident);
    let mut types = Vec::new();
    let mut parts = Vec::new();
    let mut ok = true;
    for f in &c.fields {
        let Some(field) = fields.iter().find(|x| x.ident.as_ref() == Some(f)) else {
            errors.at(f.span(), format!("no field `{f}` in `{ident}`"));
            ok = false;
            continue;
        };
        let ty = &field.ty;
        let bad = match shape(ty) {
            Shape::Option(_) => Some("an `Option` field cannot be part of a compound key".into()),
            Shape::Vec(inner) if !is_plain(inner, "u8") => Some(
                "a multi-value field cannot be part of a compound index (Indexer::compound_multi through `declare_with`)".into(),
            ),
            Shape::Vec(_) | Shape::String => None,
            Shape::Other => no_key_encoding(ty),
        };
        if let Some(why) = bad {
            errors.at(f.span(), format!("field `{f}`: {why}"));
            ok = false;
            continue;
        }
        types.push(quote!(#ty));
        parts.push(quote!(::core::clone::Clone::clone(&o.#f)));
    }
    if !ok {
        return None;
    }
    let names: Vec<String> = c.fields.iter().map(Ident::to_string).collect();
    Some(Decl {
        kind: c.kind,
        kind_span: c.kind_span,
        name: name.value(),
        name_span: name.span(),
        handle,
        key: quote!((#(#types),*)),
        indexer: quote!(#krate::Indexer::<#t, (#(#types),*)>::value(|o: &#t| (#(#parts),*))),
        on: format!("compound key `({})`", names.join(", ")),
    })
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    let fields: Vec<&syn::Field> = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(n) => n.named.iter().collect(),
            _ => {
                return Err(syn::Error::new(
                    ident.span(),
                    "#[derive(Table)] needs a struct with named fields",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                ident.span(),
                "#[derive(Table)] is for structs: a table holds objects of one struct type",
            ));
        }
    };
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Table)] does not support generic structs: declare the table by hand with Schema::builder().table::<T>(..)",
        ));
    }

    let mut errors = Errors::default();
    let attrs = parse_table_attrs(input, &mut errors);
    let krate = match &attrs.krate {
        Some(p) => quote!(#p),
        None => quote!(::pandodb),
    };

    let mut decls = Vec::new();
    for field in &fields {
        let fa = parse_field_attrs(field, &mut errors);
        if let Some(d) = field_decl(ident, field, &fa, &krate, &mut errors) {
            decls.push(d);
        }
    }
    for c in &attrs.compounds {
        if let Some(d) = compound_decl(ident, c, &fields, &krate, &mut errors) {
            decls.push(d);
        }
    }

    // Names and handles are unique; the `table` handle field is taken.
    let mut names = HashSet::new();
    let mut handles = HashSet::new();
    for d in &decls {
        if !names.insert(d.name.clone()) {
            errors.at(d.name_span, format!("two indexes are named `{}`", d.name));
        } else if d.handle == "table" {
            errors.at(
                d.handle.span(),
                "an index handle cannot be called `table`: the handle struct's `table` field holds the table (index this field through `declare_with`)",
            );
        } else if !handles.insert(d.handle.to_string()) {
            errors.at(
                d.handle.span(),
                format!("two index handles are called `{}`", d.handle),
            );
        }
    }
    let primaries: Vec<&Decl> = decls.iter().filter(|d| d.kind == Kind::Primary).collect();
    // A failed declaration may have been the primary: then say nothing more.
    let errors_so_far = errors.0.is_some();
    match primaries.as_slice() {
        [] if !errors_so_far => errors.at(
            ident.span(),
            format!(
                "`{ident}` has no primary index: mark one field #[pandodb(primary)] (or add a struct-level `primary(name = .., fields(..))`)"
            ),
        ),
        [first, rest @ ..] => {
            for d in rest {
                errors.at(
                    d.kind_span,
                    format!(
                        "a table has one primary index, and `{}` is already primary",
                        first.name
                    ),
                );
            }
        }
        _ => {}
    }
    errors.finish()?;

    let vis = &input.vis;
    let handle_ty = format_ident!("{}Table", ident);
    let table_name = match &attrs.table {
        Some(t) => t.value(),
        None => snake_case(&ident.to_string()),
    };
    let handle_fields = decls.iter().map(|d| {
        let Decl {
            handle, key, name, ..
        } = d;
        let doc = format!("The {} index `{name}`, on the {}.", d.kind.describe(), d.on);
        quote!(#[doc = #doc] pub #handle: #krate::Index<#ident, #key>)
    });
    // The generated function's own variables are hygienic (mixed-site
    // spans), so a field named `t`, `schema` or `f` cannot shadow them.
    let [t, schema, f, table] =
        ["t", "schema", "f", "table"].map(|n| Ident::new(n, Span::mixed_site()));
    let declares = decls.iter().map(|d| {
        let Decl {
            handle,
            name,
            indexer,
            ..
        } = d;
        let method = d.kind.method();
        quote!(let #handle = #t.#method(#name, #indexer);)
    });
    let handle_names = decls.iter().map(|d| &d.handle);
    let serde = attrs.serde.then(|| quote!(#t.serde();));
    let version = attrs.version.as_ref().map(|v| quote!(#t.version(#v);));

    let struct_doc = format!(
        "Typed handles of the `{table_name}` table of [`{ident}`] objects, returned by [`{ident}::declare`] (`#[derive(Table)]`)."
    );
    let declare_doc = format!(
        "Declares the `{table_name}` table and its indexes on `schema`, adds it, and returns its handles (`#[derive(Table)]`). Fails as `SchemaBuilder::add` does."
    );
    let declare_with_doc = format!(
        "Declares the `{table_name}` table like [`{ident}::declare`], calling `f` on the table builder just before it is added (for a `migrate` hook or an index the derive does not express)."
    );
    Ok(quote! {
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #handle_ty {
            /// The table.
            pub table: #krate::Table<#ident>,
            #(#handle_fields,)*
        }

        impl #ident {
            #[doc = #declare_doc]
            #vis fn declare(#schema: &mut #krate::SchemaBuilder) -> #krate::Result<#handle_ty> {
                Self::declare_with(#schema, |_| {})
            }

            #[doc = #declare_with_doc]
            #vis fn declare_with(
                #schema: &mut #krate::SchemaBuilder,
                #f: impl ::core::ops::FnOnce(&mut #krate::TableBuilder<#ident>),
            ) -> #krate::Result<#handle_ty> {
                let mut #t = #schema.table::<#ident>(#table_name);
                #(#declares)*
                #serde
                #version
                #f(&mut #t);
                let #table = #schema.add(#t)?;
                ::core::result::Result::Ok(#handle_ty { table: #table, #(#handle_names),* })
            }
        }
    })
}
