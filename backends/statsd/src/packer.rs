//! Framing: lines packed into packets of at most `max_packet` bytes.
//!
//! An *entry* is one or more lines that must travel together (a negative
//! gauge is two). Entries are appended to the current packet while it stays
//! within the limit; one that does not fit starts the next packet. An entry
//! longer than the limit on its own is sent alone rather than cut: statsd
//! would read a cut line as a bad line, or worse as another value.
//!
//! For UDP, lines are separated by `\n` and the last one has none; for TCP
//! ([`Packer::terminated`]) every line ends with `\n`, since statsd's TCP
//! server only reads up to the last line break it has received.

/// Packs entries into packets and hands each full packet to a sender.
#[derive(Debug)]
pub struct Packer {
    buf: Vec<u8>,
    max: usize,
    terminated: bool,
    lines: u64,
}

impl Packer {
    /// A packer for datagrams of at most `max` bytes, lines separated by `\n`.
    pub fn new(max: usize) -> Packer {
        Packer {
            buf: Vec::with_capacity(max),
            max,
            terminated: false,
            lines: 0,
        }
    }

    /// A packer for a stream: chunks of at most `max` bytes, every line
    /// ended by `\n`.
    pub fn terminated(max: usize) -> Packer {
        Packer {
            terminated: true,
            ..Packer::new(max)
        }
    }

    /// Adds `entry`, which stands for `lines` measurements. When it does not
    /// fit in the current packet, that packet goes to `send` first, with the
    /// number of measurements it carries.
    pub fn push(&mut self, entry: &[u8], lines: u64, send: &mut impl FnMut(&[u8], u64)) {
        let separator = usize::from(self.terminated || !self.buf.is_empty());
        if !self.buf.is_empty() && self.buf.len() + separator + entry.len() > self.max {
            self.finish(send);
        }
        if !self.terminated && !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(entry);
        if self.terminated {
            self.buf.push(b'\n');
        }
        self.lines += lines;
        if self.buf.len() >= self.max {
            // Full, or an entry too long for any packet: it goes alone.
            self.finish(send);
        }
    }

    /// Sends what is in the current packet, if anything.
    pub fn finish(&mut self, send: &mut impl FnMut(&[u8], u64)) {
        if !self.buf.is_empty() {
            send(&self.buf, self.lines);
            self.buf.clear();
            self.lines = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(packer: &mut Packer, entries: &[&str]) -> Vec<(String, u64)> {
        let mut packets = Vec::new();
        let mut send = |p: &[u8], n: u64| packets.push((String::from_utf8(p.to_vec()).unwrap(), n));
        for entry in entries {
            packer.push(entry.as_bytes(), 1, &mut send);
        }
        packer.finish(&mut send);
        packets
    }

    #[test]
    fn lines_are_packed_up_to_the_limit_and_no_further() {
        // "a:1|c" is 5 bytes: two with their separator make 11.
        let mut packer = Packer::new(11);
        let got = pack(&mut packer, &["a:1|c", "b:1|c", "c:1|c", "d:1|c", "e:1|c"]);
        assert_eq!(
            got,
            vec![
                ("a:1|c\nb:1|c".to_string(), 2),
                ("c:1|c\nd:1|c".to_string(), 2),
                ("e:1|c".to_string(), 1)
            ]
        );
    }

    #[test]
    fn a_line_longer_than_a_packet_is_sent_alone_and_whole() {
        let long = format!("{}:1|c", "x".repeat(40));
        let mut packer = Packer::new(20);
        let got = pack(&mut packer, &["a:1|c", &long, "b:1|c"]);
        assert_eq!(
            got,
            vec![
                ("a:1|c".to_string(), 1),
                (long.clone(), 1),
                ("b:1|c".to_string(), 1)
            ]
        );
    }

    #[test]
    fn stream_chunks_end_every_line() {
        let mut packer = Packer::terminated(12);
        let got = pack(&mut packer, &["a:1|c", "b:1|c", "c:1|c"]);
        assert_eq!(
            got,
            vec![
                ("a:1|c\nb:1|c\n".to_string(), 2),
                ("c:1|c\n".to_string(), 1)
            ]
        );
    }

    #[test]
    fn nothing_pushed_sends_nothing() {
        let mut packer = Packer::new(100);
        assert!(pack(&mut packer, &[]).is_empty());
    }
}
