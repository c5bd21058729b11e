#[zibrato::time_me(level = "info", labels("9lives" = "x"))]
fn f() {}

fn main() {
    f();
}
