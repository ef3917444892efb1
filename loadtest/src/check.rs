//! The fanout correctness check: what one member received of one ordered
//! stream, and the tally against what was acknowledged.
//!
//! A stream is a room's seq sequence (Parley) or one publisher's message
//! numbers (a target without seqs). A member's [`SeqSet`] is a bitmap of
//! the numbers it received above the point where it joined, so exactly-once
//! and order are checked as messages arrive and loss is counted at the end
//! by comparing with the expected numbers.

/// Numbers one member received of one stream.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    /// Numbers at or below this were before the member joined.
    pub base: u64,
    bits: Vec<u64>,
    /// The highest number received.
    pub last: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// At or below the join point: history, not part of the check.
    Before,
    New,
    Duplicate,
}

impl SeqSet {
    pub fn starting_after(base: u64) -> SeqSet {
        SeqSet {
            base,
            last: base,
            ..SeqSet::default()
        }
    }

    /// Records `n`; a number below the highest so far that has not been
    /// seen counts as reordered (it arrived late), a repeat as duplicate.
    pub fn insert(&mut self, n: u64) -> Seen {
        if n <= self.base {
            return Seen::Before;
        }
        let (word, bit) = self.slot(n);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit != 0 {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        self.bits[word] |= bit;
        if n < self.last {
            self.reordered += 1;
        }
        self.last = self.last.max(n);
        Seen::New
    }

    pub fn contains(&self, n: u64) -> bool {
        if n <= self.base {
            return false;
        }
        let (word, bit) = self.slot(n);
        self.bits.get(word).is_some_and(|w| w & bit != 0)
    }

    fn slot(&self, n: u64) -> (usize, u64) {
        let offset = n - self.base - 1;
        let word = usize::try_from(offset / 64).unwrap_or(usize::MAX);
        (word, 1 << (offset % 64))
    }

    /// How many of `expected` (numbers above the join point) are missing.
    pub fn missing<'a>(&self, expected: impl IntoIterator<Item = &'a u64>) -> u64 {
        expected
            .into_iter()
            .filter(|&&n| n > self.base && !self.contains(n))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_reorders_and_losses() {
        let mut s = SeqSet::starting_after(10);
        assert_eq!(s.insert(9), Seen::Before);
        assert_eq!(s.insert(11), Seen::New);
        assert_eq!(s.insert(13), Seen::New);
        assert_eq!(s.insert(12), Seen::New);
        assert_eq!(s.insert(13), Seen::Duplicate);
        assert_eq!(s.insert(200), Seen::New);
        assert_eq!((s.duplicates, s.reordered, s.last), (1, 1, 200));
        let expected: Vec<u64> = (5..=14).collect();
        assert_eq!(s.missing(&expected), 1); // 14; 5..=10 predate the join
    }
}
