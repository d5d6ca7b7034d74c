//! How to get one file of a `files` source: the decision alone, testable without a network.

use super::state::FileState;
use crate::store::ObjectId;

/// How to get one file.
#[derive(Debug, PartialEq)]
pub(super) enum Plan<'s> {
    /// No request: a checksum file gives the hash, the store has those bytes, and there are
    /// no validators to ask with (another path or source brought them, or the state is lost).
    Keep(ObjectId),
    /// Ask "changed since?" with what we hold; a 200's body is checked like any other.
    Conditional(&'s FileState),
    /// A checksum file gives a hash we do not hold: download it, resumable.
    Resumable(ObjectId),
    /// Nothing known: a plain GET.
    Plain,
}

/// Decides how to fetch a file from the hash a checksum file gives (`expected`), what we
/// hold for its path (`held`: an object still in the store, with its validators) and what
/// the store has. One request at most for a file we hold: that is the cost of "unchanged".
pub(super) fn plan<'s>(
    expected: Option<ObjectId>,
    held: Option<&'s FileState>,
    in_store: impl Fn(&ObjectId) -> bool,
) -> Plan<'s> {
    let conditional = held.filter(|h| h.has_validators());
    match (expected, conditional) {
        // The upstream may have changed the file and not its checksum line: ask, and check.
        (Some(id), Some(held)) if held.object == id => Plan::Conditional(held),
        (Some(id), None) if in_store(&id) => Plan::Keep(id),
        (Some(id), _) => Plan::Resumable(id),
        (None, Some(held)) => Plan::Conditional(held),
        (None, None) => Plan::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_for_what_we_hold() {
        let a = ObjectId([1; 32]);
        let b = ObjectId([2; 32]);
        let state = |object, validators: bool| FileState {
            object,
            size: 1,
            etag: validators.then(|| "\"x\"".to_string()),
            last_modified: None,
            sha512: None,
        };
        let held_a = state(a, true);
        let bare_a = state(a, false);
        let stored = |id: &ObjectId| *id == a;
        let nothing = |_: &ObjectId| false;
        assert_eq!(plan(None, None, nothing), Plan::Plain);
        assert_eq!(
            plan(None, Some(&held_a), stored),
            Plan::Conditional(&held_a)
        );
        assert_eq!(plan(None, Some(&bare_a), stored), Plan::Plain);
        assert_eq!(
            plan(Some(a), Some(&held_a), stored),
            Plan::Conditional(&held_a)
        );
        assert_eq!(plan(Some(a), None, stored), Plan::Keep(a));
        assert_eq!(plan(Some(a), Some(&bare_a), stored), Plan::Keep(a));
        assert_eq!(plan(Some(b), Some(&held_a), stored), Plan::Resumable(b));
        assert_eq!(plan(Some(b), None, nothing), Plan::Resumable(b));
    }
}
