//! Real-time scheduling for the player thread, so that replay stays on time
//! when the synth and the visuals compete for the same cores.
//!
//! [`audio_thread_priority`] does what each OS offers: `SCHED_FIFO` on Linux,
//! the time-constraint policy on macOS, MMCSS on Windows. An OS may refuse
//! (Linux without root, `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` limit); the
//! thread then runs at normal priority and the refusal is reported in words.

use super::player::Realtime;

/// The period the player thread asks to be scheduled at: 512 frames at
/// 48 kHz, about 10.7 ms, a little more than the player's longest sleep
/// between command checks matters for.
const FRAMES: u32 = 512;
const RATE_HZ: u32 = 48_000;

/// Returns the thread to normal priority when dropped (on the thread it was made on).
pub struct RealtimeGuard(Option<audio_thread_priority::RtPriorityHandle>);

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            if let Err(e) = audio_thread_priority::demote_current_thread_from_real_time(h) {
                log::debug!("leaving real-time scheduling: {e}");
            }
        }
    }
}

/// Asks for real-time scheduling for the calling thread. Never fails: a
/// refusal is [`Realtime::Refused`] with the OS's reason.
pub fn promote_current_thread() -> (Realtime, Option<RealtimeGuard>) {
    match audio_thread_priority::promote_current_thread_to_real_time(FRAMES, RATE_HZ) {
        Ok(h) => (Realtime::InForce, Some(RealtimeGuard(Some(h)))),
        Err(e) => (Realtime::Refused(e.to_string()), None),
    }
}
