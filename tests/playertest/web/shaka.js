"use strict";
// Shaka Player 5.2.12 with CMCD v2 event mode, the options as
// externs/shaka/player.js names them (CmcdConfiguration, CmcdTarget).
// Otherwise Shaka's defaults, except two:
// - the forward buffer (streaming.bufferingGoal), which the tests keep short
//   so that a held segment stalls playback within seconds;
// - abr.droppedFrames, off: the test machine (two shared cores, software
//   decoding) drops frames at 720p, which Shaka answers by banning the
//   rendition for 30 s, so the rendition would follow the machine's load
//   instead of the link the tests throttle.
(async () => {
  const pp = window.pp;
  const c = pp.config;
  const video = document.getElementById("video");
  pp.player = "shaka";
  pp.version = shaka.Player.version;
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    pp.errors.push({ at: Date.now(), fatal: true, source: "page", code: "unsupported", detail: "shaka: browser not supported" });
    return;
  }
  const player = new shaka.Player();
  window.player = player;
  player.addEventListener("error", (e) => {
    const d = e.detail;
    pp.errors.push({ at: Date.now(), fatal: d.severity === shaka.util.Error.Severity.CRITICAL, source: "shaka", code: String(d.code), detail: "category " + d.category + " severity " + d.severity });
  });
  player.addEventListener("variantchanged", () => {
    pp.bitrates.push({ at: Date.now(), kbps: pp.currentKbps() });
  });
  player.addEventListener("adaptation", () => {
    pp.bitrates.push({ at: Date.now(), kbps: pp.currentKbps() });
  });
  // The active variant track is the one being streamed.
  pp.currentKbps = () => {
    const t = player.getVariantTracks().find((v) => v.active);
    return t ? t.bandwidth / 1000 : 0;
  };
  // CMCD is configured before attach(): the CMCD manager starts its reporter
  // and its media-element listeners (play state) when the element is
  // attached, so a configuration made afterwards loses the play-state events.
  player.configure({
    streaming: { bufferingGoal: c.buffer },
    abr: { droppedFrames: false },
    cmcd: {
      enabled: true,
      version: 2,
      sessionId: c.sid,
      contentId: c.cid,
      eventTargets: [{ url: c.collector, events: c.events, interval: c.interval, batchSize: c.batch }],
    },
  });
  await player.attach(video);
  const loading = player.load(c.src);
  pp.play();
  try {
    await loading;
  } catch (e) {
    pp.errors.push({ at: Date.now(), fatal: true, source: "shaka load()", code: String(e.code), detail: String(e.message || "") });
  }
})();
