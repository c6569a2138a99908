//! Named worker threads that are joined in one way.
//!
//! Every worker (control, demo, player, recorder, subscriber, embedded
//! broker) is a named thread owned by a handle that, when stopped or dropped,
//! signals it, waits for it to end, and says so if it panicked.
//! [`NamedThread`] is that last part: spawn with a name, join once, and a panic
//! becomes an error naming the thread (logged as it is found), never a
//! second panic in the joining thread.

use std::any::Any;
use std::thread::JoinHandle;

/// Why [`NamedThread::join`] has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The thread panicked; the text is the panic's message.
    #[error("the {thread} thread panicked: {message}")]
    Panicked {
        /// The thread's name.
        thread: String,
        /// What it panicked with.
        message: String,
    },
    /// It was joined before.
    #[error("the {thread} thread was already stopped")]
    AlreadyJoined {
        /// The thread's name.
        thread: String,
    },
}

/// A named thread, joined at most once.
#[derive(Debug)]
pub struct NamedThread<T> {
    name: String,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> NamedThread<T> {
    /// Starts `f` on a new thread called `name`.
    pub fn spawn<F>(name: impl Into<String>, f: F) -> std::io::Result<NamedThread<T>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let name = name.into();
        let handle = std::thread::Builder::new().name(name.clone()).spawn(f)?;
        Ok(NamedThread {
            name,
            handle: Some(handle),
        })
    }
}

impl<T> NamedThread<T> {
    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it has not been joined yet.
    pub fn is_joinable(&self) -> bool {
        self.handle.is_some()
    }

    /// Whether the thread has ended (by itself, or joined).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the thread to end and returns what it returned. Call it
    /// after telling the thread to stop. A panic is logged and returned as
    /// [`JoinError::Panicked`]; a second call returns
    /// [`JoinError::AlreadyJoined`].
    pub fn join(&mut self) -> Result<T, JoinError> {
        let handle = self.handle.take().ok_or_else(|| JoinError::AlreadyJoined {
            thread: self.name.clone(),
        })?;
        handle.join().map_err(|panic| {
            let err = JoinError::Panicked {
                thread: self.name.clone(),
                message: panic_message(panic.as_ref()),
            };
            log::error!("{err}");
            err
        })
    }

    /// Joins the thread if it has not been joined, discarding its result (a
    /// panic is logged by [`NamedThread::join`]). For `stop` and `Drop`.
    pub fn join_quietly(&mut self) {
        if self.is_joinable() {
            let _ = self.join();
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a text)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_comes_back_once() {
        let mut w = NamedThread::spawn("adder", || 2 + 3).unwrap();
        assert_eq!(w.name(), "adder");
        assert_eq!(w.join(), Ok(5));
        assert!(w.is_finished());
        assert!(!w.is_joinable());
        assert_eq!(
            w.join(),
            Err(JoinError::AlreadyJoined {
                thread: "adder".into()
            })
        );
    }

    #[test]
    fn a_panic_becomes_an_error_naming_the_thread() {
        let mut w =
            NamedThread::spawn("faulty", || -> u32 { panic!("out of {}", "luck") }).unwrap();
        let err = w.join().unwrap_err();
        assert_eq!(
            err,
            JoinError::Panicked {
                thread: "faulty".into(),
                message: "out of luck".into()
            }
        );
        assert_eq!(err.to_string(), "the faulty thread panicked: out of luck");
        // and joining again is harmless
        w.join_quietly();
    }
}
