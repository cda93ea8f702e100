//! The blocking server's helper threads: the timer, which sleeps until the core's next
//! deadline, and the workers that run remote KEK calls off the plugin lock.

use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::{Job, Shared};
use crate::provider::{self, KekProvider};

pub(super) fn timer_loop(shared: &Shared) {
    let mut st = shared.lock();
    while !st.finished {
        if st.driver.fire_timers() {
            let flush = shared.drain(&mut st);
            drop(st);
            drop(flush);
            st = shared.lock();
            continue;
        }
        // Armed and waited for under one lock hold: a drain that moves the deadline earlier
        // runs while this thread waits, and its notify is not lost.
        st = match st.driver.arm_timer() {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                shared
                    .timer_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .timer_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

pub(super) fn remote_worker(
    shared: &Shared,
    jobs: &Mutex<Receiver<Job>>,
    provider: &dyn KekProvider,
) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let result = provider::execute(provider, &job.op, job.deadline);
        shared.with(|st| {
            let now = st.driver.now();
            if let Err(e) = st.driver.plugin.handle_remote(job.id, result, now) {
                shared
                    .logger
                    .error("remote reply rejected by the core", &[("error", &e)]);
            }
        });
    }
}
