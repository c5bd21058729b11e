#[zibrato::count_me(level = "info", value = "five")]
fn f() {}

fn main() {
    f();
}
