//! The rooms one chat socket is in, as a list that holds its first room
//! inline.
//!
//! Nearly every socket is in one room. A `Vec` would put that one slot in
//! a heap chunk of its own (32 bytes of malloc for 24 of slot) on every
//! idle connection; this list only allocates from the second room on.
//! Order is not kept across removals, as with `Vec::swap_remove`.

use super::conn::RoomSlot;

#[derive(Default)]
pub enum RoomSlots {
    #[default]
    Empty,
    One(RoomSlot),
    /// Two or more rooms, exactly sized: rare, and a boxed slice keeps the
    /// list at the size of one slot (the enum's tag hides in the slot's
    /// state byte).
    Many(Box<[RoomSlot]>),
}

impl RoomSlots {
    pub fn as_slice(&self) -> &[RoomSlot] {
        match self {
            RoomSlots::Empty => &[],
            RoomSlots::One(slot) => std::slice::from_ref(slot),
            RoomSlots::Many(slots) => slots,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn get(&self, i: usize) -> Option<&RoomSlot> {
        self.as_slice().get(i)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut RoomSlot> {
        match self {
            RoomSlots::Empty => None,
            RoomSlots::One(slot) => (i == 0).then_some(slot),
            RoomSlots::Many(slots) => slots.get_mut(i),
        }
    }

    /// Where the slot of `room` is, if the socket has one.
    pub fn position(&self, room: &str) -> Option<usize> {
        self.as_slice().iter().position(|s| &*s.name == room)
    }

    pub fn push(&mut self, slot: RoomSlot) {
        *self = match std::mem::take(self) {
            RoomSlots::Empty => RoomSlots::One(slot),
            RoomSlots::One(first) => RoomSlots::Many(Box::new([first, slot])),
            RoomSlots::Many(slots) => {
                let mut slots = slots.into_vec();
                slots.reserve_exact(1);
                slots.push(slot);
                RoomSlots::Many(slots.into_boxed_slice())
            }
        };
    }

    /// Removes slot `i`, moving the last slot into its place.
    pub fn swap_remove(&mut self, i: usize) -> Option<RoomSlot> {
        match self {
            RoomSlots::Empty => None,
            RoomSlots::One(_) if i != 0 => None,
            RoomSlots::One(_) => match std::mem::take(self) {
                RoomSlots::One(slot) => Some(slot),
                _ => None,
            },
            RoomSlots::Many(slots) if i >= slots.len() => None,
            RoomSlots::Many(slots) => {
                let mut rest = std::mem::take(slots).into_vec();
                let slot = rest.swap_remove(i);
                *self = match rest.len() {
                    1 => rest.pop().map_or(RoomSlots::Empty, RoomSlots::One),
                    _ => RoomSlots::Many(rest.into_boxed_slice()),
                };
                Some(slot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::conn::SlotState;
    use std::sync::Arc;

    fn slot(name: &str) -> RoomSlot {
        RoomSlot {
            name: Arc::from(name),
            state: SlotState::Joined,
        }
    }

    fn names(slots: &RoomSlots) -> Vec<&str> {
        slots.as_slice().iter().map(|s| &*s.name).collect()
    }

    #[test]
    fn the_first_room_is_held_inline() {
        let mut slots = RoomSlots::default();
        assert_eq!(slots.len(), 0);
        slots.push(slot("a"));
        assert!(matches!(slots, RoomSlots::One(_)));
        assert_eq!(slots.position("a"), Some(0));
        assert_eq!(slots.position("b"), None);
        assert!(slots.get_mut(1).is_none());
        slots.get_mut(0).unwrap().state = SlotState::Leaving { pending: 1 };
        assert_eq!(
            slots.get(0).unwrap().state,
            SlotState::Leaving { pending: 1 }
        );
    }

    #[test]
    fn pushes_and_removals_keep_every_other_room() {
        let mut slots = RoomSlots::default();
        for name in ["a", "b", "c"] {
            slots.push(slot(name));
        }
        assert_eq!(names(&slots), ["a", "b", "c"]);
        assert_eq!(&*slots.swap_remove(0).unwrap().name, "a");
        assert_eq!(names(&slots), ["c", "b"]);
        assert!(slots.swap_remove(5).is_none());
        assert_eq!(&*slots.swap_remove(1).unwrap().name, "b");
        assert!(matches!(slots, RoomSlots::One(_)));
        assert!(slots.swap_remove(1).is_none());
        assert_eq!(&*slots.swap_remove(0).unwrap().name, "c");
        assert!(matches!(slots, RoomSlots::Empty));
        assert!(slots.swap_remove(0).is_none());
    }

    #[test]
    fn the_list_is_no_larger_than_one_slot() {
        let size = std::mem::size_of::<RoomSlots>();
        assert_eq!(
            size,
            std::mem::size_of::<RoomSlot>(),
            "RoomSlots is {size} bytes"
        );
    }
}
