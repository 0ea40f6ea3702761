//! Compile-fail tests of `#[derive(Table)]`'s attribute errors: each
//! `tests/ui/*.rs` must fail to compile with exactly the messages and spans
//! in its `.stderr` file (regenerate after a deliberate change with
//! `TRYBUILD=overwrite cargo test --release -p pandodb-derive --test ui`,
//! then read the diff).

#[test]
fn attribute_errors_are_compile_errors_with_spans() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
