//! Bad arguments to `#[count_me]` / `#[time_me]` are compile errors that
//! point at the argument.

#[test]
fn bad_macro_arguments_are_compile_errors_at_the_argument() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
