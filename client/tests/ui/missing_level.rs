#[zibrato::count_me(name = "calls")]
fn f() {}

fn main() {
    f();
}
