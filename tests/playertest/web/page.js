"use strict";
// The page's own measurements of the playback, from the video element's
// events, independent of the player's CMCD reports: the tests compare the
// two. Everything is on window.pp; pp.snapshot() is what chromedp reads.
// All times are Date.now() epoch milliseconds, the clock of CMCD's ts.
//
// Query parameters (all set by playertest.PageURL):
//   src        the master playlist
//   collector  the CMCD v2 event target URL
//   sid, cid   CMCD session id and content id
//   events     comma-separated CMCD event types to report (default ps,e,t,bc)
//   interval   seconds between time-interval (t) reports
//   batch      reports per POST
//   buffer     the player's forward buffer goal, seconds
(() => {
  const params = new URLSearchParams(location.search);
  const video = document.getElementById("video");
  const pp = {
    params: Object.fromEntries(params),
    config: {
      src: params.get("src") || "",
      collector: params.get("collector") || "",
      sid: params.get("sid") || "",
      cid: params.get("cid") || "",
      events: (params.get("events") || "ps,e,t,bc").split(",").filter(Boolean),
      interval: Number(params.get("interval") || 10),
      batch: Number(params.get("batch") || 1),
      buffer: Number(params.get("buffer") || 6),
    },
    player: "",
    version: "",
    playRequestedAt: 0, // just before video.play()
    firstPlayAt: 0, // the first "play" event: the element was told to play
    firstPlayingAt: 0, // the first "playing" event
    firstFrameAt: 0, // the first frame presented (requestVideoFrameCallback)
    stalls: [], // {start, end, position}: "waiting" after the first "playing", to the next "playing"
    errors: [], // {at, fatal, source, code, detail}
    bitrates: [], // {at, kbps}: each time the rendition being played changes (player API)
    events: [], // [type, at, currentTime] of the element's events, the first 1000
    ended: false,
    currentKbps: () => 0, // the playing rendition's bitrate, from the player API (set by the player's script)
    fatal: () => pp.errors.some((e) => e.fatal),
  };
  window.pp = pp;

  for (const type of ["loadstart", "loadedmetadata", "loadeddata", "canplay", "play", "playing", "waiting", "stalled", "pause", "seeking", "seeked", "ended", "error", "emptied"]) {
    video.addEventListener(type, () => {
      if (pp.events.length < 1000) pp.events.push([type, Date.now(), video.currentTime]);
    });
  }
  video.addEventListener("play", () => {
    if (!pp.firstPlayAt) pp.firstPlayAt = Date.now();
  });
  video.addEventListener("playing", () => {
    const now = Date.now();
    if (!pp.firstPlayingAt) pp.firstPlayingAt = now;
    const last = pp.stalls[pp.stalls.length - 1];
    if (last && !last.end) last.end = now;
  });
  video.addEventListener("waiting", () => {
    // Before the first frame, waiting is startup, not a stall.
    if (!pp.firstPlayingAt) return;
    const last = pp.stalls[pp.stalls.length - 1];
    if (!last || last.end) pp.stalls.push({ start: Date.now(), end: 0, position: video.currentTime });
  });
  video.addEventListener("ended", () => { pp.ended = true; });
  video.addEventListener("error", () => {
    const e = video.error;
    pp.errors.push({ at: Date.now(), fatal: true, source: "video", code: String(e ? e.code : ""), detail: e ? e.message : "" });
  });
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback((now, meta) => {
      pp.firstFrameAt = Math.round(performance.timeOrigin + (meta.presentationTime || now));
    });
  }

  // play asks the element to play, noting when: the start of startup.
  pp.play = () => {
    pp.playRequestedAt = Date.now();
    const p = video.play();
    if (p) p.catch((e) => pp.errors.push({ at: Date.now(), fatal: false, source: "play()", code: e.name, detail: e.message }));
  };

  pp.snapshot = () => {
    const b = video.buffered;
    let ahead = 0;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && b.end(i) > video.currentTime) ahead = b.end(i) - video.currentTime;
    }
    return {
      player: pp.player,
      version: pp.version,
      playRequestedAt: pp.playRequestedAt,
      firstPlayAt: pp.firstPlayAt,
      firstPlayingAt: pp.firstPlayingAt,
      firstFrameAt: pp.firstFrameAt,
      // Startup by the element's own events, "play" to the first "playing":
      // play() only queues the "play" event, and on a busy machine the
      // player's work at load can run before it for tens of ms.
      startupMs: pp.firstPlayingAt && pp.firstPlayAt ? pp.firstPlayingAt - pp.firstPlayAt : -1,
      stalls: pp.stalls.map((s) => ({ ...s })),
      waiting: pp.stalls.some((s) => !s.end),
      errors: pp.errors.map((e) => ({ ...e })),
      fatal: pp.fatal(),
      bitrates: pp.bitrates.map((b) => ({ ...b })),
      kbps: pp.currentKbps(),
      currentTime: video.currentTime,
      bufferAhead: ahead,
      paused: video.paused,
      readyState: video.readyState,
      ended: pp.ended,
      events: pp.events.map((e) => [...e]),
      userAgent: navigator.userAgent,
    };
  };
})();
