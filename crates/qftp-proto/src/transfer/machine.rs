//! The rule every transfer machine follows around its own steps: a
//! finished machine takes no more events, an event with no place in the
//! current state is refused as out of order, and a refused event leaves
//! the machine failed.

use crate::transfer::error::TransferError;
use crate::transfer::event::{ReceiveEvent, SendEvent};

/// An event that can say what it is, for errors.
pub(crate) trait Named: Copy {
    /// The event in words.
    fn name(&self) -> &'static str;
}

impl Named for ReceiveEvent {
    fn name(&self) -> &'static str {
        ReceiveEvent::name(self)
    }
}

impl Named for SendEvent {
    fn name(&self) -> &'static str {
        SendEvent::name(self)
    }
}

/// One transfer state machine, as seen by [`run`].
pub(crate) trait Machine {
    /// What it is told.
    type Event: Named;
    /// What it answers.
    type Action;

    /// The current state in words.
    fn describe(&self) -> &'static str;

    /// Whether the machine has finished (done, abandoned or failed).
    fn is_finished(&self) -> bool;

    /// One step of the machine: the action, `None` when the event has no
    /// place in the current state (which is then left as it was), or the
    /// rule the event broke.
    fn step(&mut self, event: Self::Event) -> Result<Option<Self::Action>, TransferError>;

    /// Puts the machine into its failed state.
    fn fail(&mut self, error: TransferError);
}

/// Feeds `event` to `machine`: refused once the machine has finished or
/// when the event is out of order, and a refusal fails the machine.
pub(crate) fn run<M: Machine>(
    machine: &mut M,
    event: M::Event,
) -> Result<M::Action, TransferError> {
    let out_of_order = TransferError::OutOfOrder {
        event: event.name(),
        state: machine.describe(),
    };
    if machine.is_finished() {
        return Err(out_of_order);
    }
    let result = machine
        .step(event)
        .and_then(|action| action.ok_or(out_of_order));
    result.inspect_err(|error| machine.fail(error.clone()))
}
