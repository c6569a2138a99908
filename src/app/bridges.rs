//! The bridges in the app: OSC out and the WebSocket feed with its monitor
//! page, switched and configured in Settings, run by the control thread on
//! the app's bus, with their counters shown beside the switches.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bridge::{OscBridge, OscConfig, OscSend, OscStats, WsBridge, WsConfig, WsStats};
use crate::clock::{MonotonicClock, SharedClock};
use crate::kafka::{unix_ms_now, Assignment, Connection, Subscriber, SubscriberConfig};
use crate::Topic;

/// What the performer set for the bridges (kept with the other settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BridgeSettings {
    /// Send OSC.
    pub osc_on: bool,
    /// OSC targets, `HOST:PORT` one per line.
    pub osc_targets: String,
    /// What OSC carries.
    pub osc_send: OscSend,
    /// One OSC bundle per 60 Hz tick.
    pub osc_bundle: bool,
    /// Serve the WebSocket feed and the monitor page.
    pub ws_on: bool,
    /// Where it listens.
    pub ws_listen: String,
    /// The token clients must present (required off loopback).
    pub ws_token: String,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            osc_on: false,
            osc_targets: "127.0.0.1:9000".to_owned(),
            osc_send: OscSend::default(),
            osc_bundle: false,
            ws_on: false,
            ws_listen: crate::bridge::ws::DEFAULT_LISTEN.to_owned(),
            ws_token: String::new(),
        }
    }
}

impl BridgeSettings {
    /// The OSC targets, one per non-blank line.
    pub fn targets(&self) -> Vec<String> {
        self.osc_targets
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

/// How the bridges are doing, for the Settings panel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeStatus {
    /// The OSC bridge's counters while it runs.
    pub osc: Option<OscStats>,
    /// Why OSC is not running although switched on.
    pub osc_error: Option<String>,
    /// Where the WebSocket bridge listens and its counters.
    pub ws: Option<(SocketAddr, WsStats)>,
    /// Why the WebSocket bridge is not running although switched on.
    pub ws_error: Option<String>,
}

struct Running<B> {
    bridge: B,
    _subscriber: Subscriber,
}

/// The running bridges; owned by the control thread.
#[derive(Default)]
pub struct Bridges {
    settings: BridgeSettings,
    osc: Option<Running<OscBridge>>,
    ws: Option<Running<WsBridge>>,
    osc_error: Option<String>,
    ws_error: Option<String>,
}

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridges")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn subscriber(connection: &Connection, name: &str, topics: &[Topic]) -> Result<Subscriber, String> {
    Subscriber::start(
        connection,
        SubscriberConfig {
            thread_name: format!("app-{name}"),
            assignment: Assignment::Direct,
            ..SubscriberConfig::new(
                format!(
                    "integr8tor-app-{name}-{}-{}",
                    std::process::id(),
                    unix_ms_now()
                ),
                topics,
            )
        },
    )
    .map_err(|e| e.to_string())
}

impl Bridges {
    /// Applies new settings on `connection` (`None`: no bus, nothing runs),
    /// restarting only the bridges whose settings changed.
    pub fn apply(&mut self, settings: BridgeSettings, connection: Option<&Connection>) {
        let old = std::mem::replace(&mut self.settings, settings);
        let osc_changed = old.osc_on != self.settings.osc_on
            || old.targets() != self.settings.targets()
            || old.osc_send != self.settings.osc_send
            || old.osc_bundle != self.settings.osc_bundle;
        let ws_changed = old.ws_on != self.settings.ws_on
            || old.ws_listen != self.settings.ws_listen
            || old.ws_token != self.settings.ws_token;
        if osc_changed || self.osc.is_none() {
            self.start_osc(connection);
        }
        if ws_changed || self.ws.is_none() {
            self.start_ws(connection);
        }
    }

    /// The bus changed: start again on the new one.
    pub fn reconnect(&mut self, connection: Option<&Connection>) {
        self.start_osc(connection);
        self.start_ws(connection);
    }

    /// Stops both.
    pub fn stop(&mut self) {
        self.osc = None;
        self.ws = None;
    }

    fn start_osc(&mut self, connection: Option<&Connection>) {
        self.osc = None;
        self.osc_error = None;
        let s = &self.settings;
        if !s.osc_on {
            return;
        }
        let Some(connection) = connection else {
            self.osc_error = Some("not connected to a bus".to_owned());
            return;
        };
        let config = OscConfig {
            targets: s.targets(),
            send: s.osc_send,
            bundle: s.osc_bundle,
            thread_name: "app-osc-bridge".to_owned(),
            ..OscConfig::default()
        };
        let started = subscriber(
            connection,
            "osc",
            &[Topic::Params, Topic::Mod, Topic::Audio, Topic::Events],
        )
        .and_then(|sub| {
            let clock: SharedClock = Arc::new(MonotonicClock::new());
            OscBridge::start(sub.events().clone(), config, clock)
                .map(|bridge| Running {
                    bridge,
                    _subscriber: sub,
                })
                .map_err(|e| e.to_string())
        });
        match started {
            Ok(r) => self.osc = Some(r),
            Err(e) => self.osc_error = Some(e),
        }
    }

    fn start_ws(&mut self, connection: Option<&Connection>) {
        // the old listener must be gone before the new one binds
        self.ws = None;
        self.ws_error = None;
        let s = &self.settings;
        if !s.ws_on {
            return;
        }
        let Some(connection) = connection else {
            self.ws_error = Some("not connected to a bus".to_owned());
            return;
        };
        let listen: SocketAddr = match s.ws_listen.trim().parse() {
            Ok(a) => a,
            Err(_) => {
                self.ws_error = Some(format!(
                    "listen address {:?}: expected ADDRESS:PORT such as 127.0.0.1:8765",
                    s.ws_listen
                ));
                return;
            }
        };
        let config = WsConfig {
            listen,
            token: Some(s.ws_token.trim().to_owned()).filter(|t| !t.is_empty()),
            thread_name: "app-ws-bridge".to_owned(),
            ..WsConfig::default()
        };
        let started = subscriber(connection, "ws", &Topic::ALL).and_then(|sub| {
            WsBridge::start(sub.events().clone(), config, None)
                .map(|bridge| Running {
                    bridge,
                    _subscriber: sub,
                })
                .map_err(|e| e.to_string())
        });
        match started {
            Ok(r) => self.ws = Some(r),
            Err(e) => self.ws_error = Some(e),
        }
    }

    /// The counters now.
    pub fn status(&self) -> BridgeStatus {
        BridgeStatus {
            osc: self.osc.as_ref().map(|r| r.bridge.stats()),
            osc_error: self.osc_error.clone(),
            ws: self
                .ws
                .as_ref()
                .map(|r| (r.bridge.local_addr(), r.bridge.stats())),
            ws_error: self.ws_error.clone(),
        }
    }
}

/// The Bridges part of the Settings tab: edits the draft; Apply (in the
/// Settings tab) sends it to the control thread.
pub fn bridges_ui(ui: &mut egui::Ui, draft: &mut BridgeSettings, status: &BridgeStatus) {
    ui.heading("Bridges");
    egui::Grid::new("settings-bridges")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            ui.label("OSC out");
            ui.checkbox(&mut draft.osc_on, "Send OSC");
            ui.end_row();

            let l = ui.label("OSC targets");
            ui.add(
                egui::TextEdit::multiline(&mut draft.osc_targets)
                    .hint_text("127.0.0.1:9000\n192.168.1.20:7000")
                    .desired_rows(2)
                    .desired_width(240.0)
                    .code_editor(),
            )
            .labelled_by(l.id);
            ui.end_row();

            ui.label("OSC sends");
            ui.horizontal_wrapped(|ui| {
                let s = &mut draft.osc_send;
                ui.checkbox(&mut s.params, "Parameters");
                ui.checkbox(&mut s.mod_buses, "Mod buses");
                ui.checkbox(&mut s.mod_list, "Bus list");
                ui.checkbox(&mut s.events, "Events");
                ui.checkbox(&mut s.levels, "Levels");
                ui.checkbox(&mut draft.osc_bundle, "One bundle per tick");
            });
            ui.end_row();

            ui.label("WebSocket");
            ui.checkbox(&mut draft.ws_on, "Serve the feed and the monitor page");
            ui.end_row();

            let l = ui.label("Listen on");
            ui.add(egui::TextEdit::singleline(&mut draft.ws_listen).desired_width(200.0))
                .labelled_by(l.id);
            ui.end_row();

            let l = ui.label("Token");
            ui.add(
                egui::TextEdit::singleline(&mut draft.ws_token)
                    .hint_text("required off loopback")
                    .password(true)
                    .desired_width(200.0),
            )
            .labelled_by(l.id);
            ui.end_row();
        });
    let error = ui.visuals().error_fg_color;
    if let Some(e) = &status.osc_error {
        ui.colored_label(error, format!("OSC: {e}"));
    }
    if let Some(osc) = &status.osc {
        for t in &osc.targets {
            let trouble = t.refused + t.dropped + t.errors;
            let line = format!("OSC to {}: {} packets sent", t.target, t.packets);
            if trouble > 0 {
                ui.colored_label(
                    error,
                    format!(
                        "{line}, {trouble} failed ({})",
                        t.last_error.as_deref().unwrap_or("unknown")
                    ),
                );
            } else {
                ui.label(line);
            }
        }
    }
    if let Some(e) = &status.ws_error {
        ui.colored_label(error, format!("WebSocket: {e}"));
    }
    if let Some((addr, ws)) = &status.ws {
        ui.horizontal(|ui| {
            ui.hyperlink_to(
                format!("Monitor page http://{addr}/"),
                format!("http://{addr}/"),
            );
            ui.label(format!(
                "{} clients, {} frames sent, {} closed as too slow",
                ws.clients, ws.frames, ws.closed_slow
            ));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_one_per_line() {
        let s = BridgeSettings {
            osc_targets: " 127.0.0.1:9000 \n\n# off\nhost:7000\n".into(),
            ..BridgeSettings::default()
        };
        assert_eq!(s.targets(), ["127.0.0.1:9000", "host:7000"]);
    }

    #[test]
    fn a_bridge_without_a_bus_says_so_and_off_means_off() {
        let mut b = Bridges::default();
        b.apply(
            BridgeSettings {
                osc_on: true,
                ws_on: true,
                ..BridgeSettings::default()
            },
            None,
        );
        let s = b.status();
        assert_eq!(s.osc_error.as_deref(), Some("not connected to a bus"));
        assert!(s.osc.is_none() && s.ws.is_none());
        b.apply(BridgeSettings::default(), None);
        assert_eq!(b.status(), BridgeStatus::default());
    }

    #[test]
    fn bridges_run_on_a_bus_and_report() {
        let broker = crate::kafka::EmbeddedBroker::start(None).unwrap();
        let conn = Connection::to_embedded(&broker);
        let mut b = Bridges::default();
        b.apply(
            BridgeSettings {
                osc_on: true,
                ws_on: true,
                ws_listen: "127.0.0.1:0".into(),
                ..BridgeSettings::default()
            },
            Some(&conn),
        );
        let s = b.status();
        assert_eq!(s.osc.map(|o| o.targets.len()), Some(1));
        assert!(s.ws.is_some(), "{:?}", s.ws_error);
        // off the loopback without a token: refused in words
        b.apply(
            BridgeSettings {
                ws_on: true,
                ws_listen: "0.0.0.0:0".into(),
                ..BridgeSettings::default()
            },
            Some(&conn),
        );
        let s = b.status();
        assert!(s.ws_error.unwrap().contains("token"));
        assert!(s.osc.is_none());
    }
}
