// The web console (`GET /console`): one self-contained page that subscribes with EventSource and publishes with
// fetch against the same gateway, for trying the API from a browser.

/// The page loads nothing from elsewhere, and its Content-Security-Policy lets it talk only to its own origin. Message
/// text is put in the page with `textContent` only, so a payload cannot become markup.
public enum GatewayConsole {
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    public static var response: HTTPResponse {
        HTTPResponse(
            status: .ok,
            headers: [
                ("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", contentSecurityPolicy),
                ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"),
                ("Referrer-Policy", "no-referrer"),
            ],
            body: Array(page.utf8))
    }

    static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Midge console</title>
        <style>
          body { font: 14px system-ui, sans-serif; margin: 1.5em; max-width: 60em; }
          fieldset { margin-bottom: 1em; } label { display: inline-block; margin: .2em .8em .2em 0; }
          input[type=text], input[type=password], textarea { font: 13px monospace; }
          #events { font: 12px monospace; border: 1px solid #ccc; height: 24em; overflow: auto; padding: .4em; }
          #events div { white-space: pre-wrap; border-bottom: 1px solid #eee; } .note { color: #666; }
        </style>
        </head>
        <body>
        <h1>Midge console</h1>
        <p class="note">Subscribes with EventSource and publishes with fetch, on this gateway only. Write <code>#</code>
        as is here: the page encodes it.</p>
        <fieldset><legend>Credentials</legend>
          <label>Token (JWT) <input id="token" type="password" size="40"></label>
          <span class="note">Empty: the browser's own login (Basic) or anonymous.</span>
        </fieldset>
        <fieldset><legend>Subscribe</legend>
          <label>Filter <input id="filter" type="text" value="#" size="30"></label>
          <label>Start <select id="since"><option value="">now</option><option>newest</option>
            <option>oldest</option></select></label>
          <button id="subscribe">Subscribe</button> <button id="stop" disabled>Stop</button>
          <span id="state" class="note">not subscribed</span>
        </fieldset>
        <fieldset><legend>Publish</legend>
          <label>Topic <input id="topic" type="text" value="console/test" size="30"></label>
          <label>QoS <select id="qos"><option>0</option><option>1</option><option>2</option></select></label>
          <label><input id="retain" type="checkbox"> retain</label><br>
          <textarea id="payload" rows="3" cols="60">hello</textarea><br>
          <button id="publish">Publish</button> <span id="published" class="note"></span>
        </fieldset>
        <div id="events"></div>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        let source = null;
        function show(line) {
          const row = document.createElement("div");
          row.textContent = line;
          $("events").prepend(row);
          while ($("events").childElementCount > 500) $("events").lastChild.remove();
        }
        function tokenQuery() {
          const token = $("token").value.trim();
          return token ? "&access_token=" + encodeURIComponent(token) : "";
        }
        $("subscribe").onclick = () => {
          if (source) source.close();
          const since = $("since").value;
          const url = "subscribe?topic=" + encodeURIComponent($("filter").value)
            + (since ? "&since=" + since : "") + tokenQuery();
          source = new EventSource(url);
          $("state").textContent = "connecting";
          $("stop").disabled = false;
          source.onopen = () => { $("state").textContent = "subscribed to " + $("filter").value; };
          source.onerror = () => { $("state").textContent = "reconnecting (or refused: see the broker's log)"; };
          source.onmessage = (event) => {
            const message = JSON.parse(event.data);
            const payload = message.payload ?? ("base64:" + message.payload_base64);
            show(event.lastEventId + "  " + message.topic + "  q" + message.qos + (message.retain ? " r" : "")
              + "  " + payload);
          };
        };
        $("stop").onclick = () => {
          if (source) source.close();
          source = null;
          $("state").textContent = "not subscribed";
          $("stop").disabled = true;
        };
        $("publish").onclick = async () => {
          const headers = {};
          const token = $("token").value.trim();
          if (token) headers.Authorization = "Bearer " + token;
          const url = "publish?topic=" + encodeURIComponent($("topic").value) + "&qos=" + $("qos").value
            + "&retain=" + $("retain").checked;
          try {
            const response = await fetch(url, { method: "POST", headers, body: $("payload").value });
            $("published").textContent = response.status + " " + await response.text();
          } catch (error) {
            $("published").textContent = String(error);
          }
        };
        </script>
        </body>
        </html>
        """#
}
