//! Attribute macros on functions and methods, with the default client.

#[zibrato::count_me(level = "info", name = "greetings", value = 1, source = "example")]
fn greet(name: &str) -> String {
    format!("hello {name}")
}

/// Docs and attributes stay on the function.
#[zibrato::time_me(level = "debug", name = "parse")]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

struct Store;

impl Store {
    #[zibrato::time_me(level = "debug")] // name defaults to "lookup"
    fn lookup<K: AsRef<str>>(&self, key: K) -> usize {
        key.as_ref().len()
    }
}

fn main() {
    // The default client comes from ZIBRATO_HOST / ZIBRATO_PORT unless set
    // with zibrato::set_default(...). It is flushed at exit.
    println!("{}", greet("world"));
    println!("{:?} {:?}", parse("42"), parse("x"));
    println!("{}", Store.lookup("key"));
}
