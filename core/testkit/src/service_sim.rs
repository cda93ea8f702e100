//! A deterministic simulation of the KMS services without the transport: decoded requests in,
//! responses out, a virtual clock and a fake remote KEK.
//!
//! Useful to test key-hierarchy behaviour at scale (thousands of requests) cheaply; the
//! transport-level harness is [`crate::sim::Sim`].

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use crate::fake_remote::FakeRemote;
use crate::remote_driver::RemoteDriver;
use kms_plugin_core::config::KmsConfig;
use kms_plugin_core::effect::Effect;
use kms_plugin_core::event::Event;
use kms_plugin_core::ids::ConnId;
use kms_plugin_core::rpc::{Request, Response, StreamId};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::testing::KmsService;
use kms_plugin_core::time::Timestamp;

/// See the module docs.
pub struct ServiceSim {
    /// The services under test.
    pub service: KmsService,
    /// Virtual time.
    pub now: Timestamp,
    /// The fake remote and its scheduled replies.
    pub driver: RemoteDriver,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Answers not yet taken, by `(conn, stream)`.
    answers: BTreeMap<(ConnId, StreamId), (Response, Timestamp)>,
    next_stream: StreamId,
    /// `handle_remote` errors seen (driver misuse the test provoked on purpose).
    pub usage_errors: Vec<kms_plugin_core::error::UsageError>,
}

impl ServiceSim {
    /// A simulation starting at `t = 1 s` with `cfg`, RNG `seed` and `remote`.
    pub fn new(cfg: &KmsConfig, seed: [u8; 32], remote: FakeRemote) -> Self {
        let now = Timestamp::from_millis(1000);
        let mut sim = Self {
            service: KmsService::new(cfg, seed, now),
            now,
            driver: RemoteDriver::new(remote),
            events: Vec::new(),
            answers: BTreeMap::new(),
            next_stream: 1,
            usage_errors: Vec::new(),
        };
        sim.step();
        sim
    }

    /// Sends a request on connection 0 with an optional grpc-timeout; returns its stream.
    pub fn send(&mut self, path: &str, message: Vec<u8>, timeout: Option<Duration>) -> StreamId {
        self.send_on(ConnId(0), path, message, timeout)
    }

    /// Sends a request on `conn`.
    pub fn send_on(
        &mut self,
        conn: ConnId,
        path: &str,
        message: Vec<u8>,
        timeout: Option<Duration>,
    ) -> StreamId {
        let stream = self.next_stream;
        self.next_stream += 2;
        let req = Request {
            stream,
            path: Cow::Owned(alloc::string::String::from(path)),
            message: SecretBytes::new(message),
            deadline: timeout.map(|t| self.now.saturating_add(t)),
            received: self.now,
        };
        self.service.handle_request(conn, req, self.now);
        self.step();
        stream
    }

    /// Takes the answer to `stream` on connection 0, with the time it was given.
    pub fn take(&mut self, stream: StreamId) -> Option<(Response, Timestamp)> {
        self.answers.remove(&(ConnId(0), stream))
    }

    /// Takes the answer to `stream` on `conn`.
    pub fn take_on(&mut self, conn: ConnId, stream: StreamId) -> Option<(Response, Timestamp)> {
        self.answers.remove(&(conn, stream))
    }

    /// Answers not yet taken.
    pub fn pending_answers(&self) -> usize {
        self.answers.len()
    }

    /// Sends, drives until quiescent, and returns the answer.
    pub fn call(&mut self, path: &str, message: Vec<u8>, timeout: Option<Duration>) -> Response {
        let s = self.send(path, message, timeout);
        self.drive();
        self.take(s)
            .map(|(r, _)| r)
            .expect("request was not answered")
    }

    /// Drains effects, events and answers at the current time.
    pub fn step(&mut self) {
        for _ in 0..10_000_000 {
            let mut progressed = false;
            while let Some(a) = self.service.poll_answer() {
                self.answers
                    .insert((a.conn, a.stream), (a.response, self.now));
                progressed = true;
            }
            while let Some(e) = self.service.poll_effect() {
                if let Effect::Remote { id, op, .. } = &e {
                    self.driver.start(*id, op, self.now);
                } else if let Effect::CancelRemote { id } = e {
                    self.driver.cancelled.push(id);
                }
                progressed = true;
            }
            while let Some(ev) = self.service.poll_event() {
                self.events.push(ev);
            }
            if let Some((id, result)) = self.driver.pop_due(self.now) {
                if let Err(e) = self.service.handle_remote(id, result, self.now) {
                    self.usage_errors.push(e);
                }
                progressed = true;
            }
            if self.service.poll_timeout().is_some_and(|t| t <= self.now) {
                self.service.handle_timeout(self.now);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
        panic!(
            "the service keeps asking for work at {:?} (timer spin?)",
            self.now
        );
    }

    /// Runs until no reply is owed, no request is parked and no remote op is in flight,
    /// advancing the clock to each next reply or deadline (background timers such as the
    /// periodic Status do not keep it going).
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            self.step();
            let busy = !self.driver.is_idle()
                || self.service.parked_requests() > 0
                || self.service.keystore().remote_in_flight() > 0;
            if !busy {
                return;
            }
            let next = kms_plugin_core::time::earliest(
                self.driver.next_due(),
                self.service.poll_timeout(),
            );
            match next {
                Some(t) => self.now = self.now.max(t),
                None => return,
            }
        }
        panic!("simulation did not settle");
    }

    /// Advances virtual time by `d`, processing everything due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        self.run_until(end);
    }

    /// Processes everything due up to `end`, then sets the clock to `end`.
    pub fn run_until(&mut self, end: Timestamp) {
        for _ in 0..1_000_000 {
            self.step();
            let next = kms_plugin_core::time::earliest(
                self.driver.next_due(),
                self.service.poll_timeout(),
            );
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    self.step();
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }
}
