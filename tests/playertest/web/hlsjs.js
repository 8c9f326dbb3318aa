"use strict";
// hls.js 1.7.4 with CMCD v2 event mode, the options as dist/hls.d.ts names
// them (CMCDControllerConfig, CmcdEventReportConfig). Otherwise hls.js
// defaults, except the forward buffer (maxBufferLength), which the tests keep
// short so that a held segment stalls playback within seconds.
(() => {
  const pp = window.pp;
  const c = pp.config;
  const video = document.getElementById("video");
  pp.player = "hls.js";
  pp.version = Hls.version;
  if (!Hls.isSupported()) {
    pp.errors.push({ at: Date.now(), fatal: true, source: "page", code: "unsupported", detail: "hls.js: no MSE" });
    return;
  }
  const hls = new Hls({
    maxBufferLength: c.buffer,
    maxMaxBufferLength: c.buffer,
    cmcd: {
      version: 2,
      sessionId: c.sid,
      contentId: c.cid,
      eventTargets: [{ url: c.collector, events: c.events, interval: c.interval, batchSize: c.batch }],
    },
  });
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => {
    pp.errors.push({ at: Date.now(), fatal: !!d.fatal, source: "hls.js", code: d.type, detail: d.details });
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => {
    const l = hls.levels[d.level];
    if (l) pp.bitrates.push({ at: Date.now(), kbps: l.bitrate / 1000 });
  });
  // hls.currentLevel is the level of the fragment being played.
  pp.currentKbps = () => {
    const l = hls.levels[hls.currentLevel];
    return l ? l.bitrate / 1000 : 0;
  };
  hls.attachMedia(video);
  hls.loadSource(c.src);
  pp.play();
})();
