#[zibrato::time_me(level = "debug", value = 1)]
fn f() {}

fn main() {
    f();
}
