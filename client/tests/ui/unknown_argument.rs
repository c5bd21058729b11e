#[zibrato::count_me(level = "info", lvl = "debug")]
fn f() {}

fn main() {
    f();
}
