// directorate's dashboard: follow a directive's events, refresh what they change,
// and send the buttons' answers to the API. No build step, no dependencies.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Directorate-CSRF": csrf()},
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) alert(answer.error || answer.reason || response.statusText);
  return answer;
}

function wireForms(root) {
  for (const form of root.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = {note: data.get("note") || null, by: "dashboard"};
      if (data.get("limit") && data.get("value")) {
        body.raise_limit = {[data.get("limit")]: Number(data.get("value"))};
      }
      for (const button of form.querySelectorAll("button")) button.disabled = true;
      await post(form.dataset.action, body);
      refresh();
    });
  }
}

let refreshing = null;
async function refresh() {
  const id = document.body.dataset.directive;
  if (!id) { if (document.querySelector("[data-refresh]")) location.reload(); return; }
  if (refreshing) return;  // one at a time; the next event asks again
  refreshing = fetch(`/directives/${id}/live`, {credentials: "same-origin"})
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (html === null) return;
      const live = document.getElementById("live");
      live.innerHTML = html;
      wireForms(live);
    })
    .finally(() => { refreshing = null; });
}

function follow(id) {
  const log = document.getElementById("events");
  const source = new EventSource(`/api/directives/${id}/events`);
  source.addEventListener("directive-event", (message) => {
    const event = JSON.parse(message.data);
    const item = document.createElement("li");
    item.value = event.seq;
    item.className = event.severity;
    item.textContent = `${event.created_at.slice(11, 19)} ${event.event_type} ${JSON.stringify(event.data)}`;
    log.appendChild(item);
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms(document);
  const id = document.body.dataset.directive;
  if (id) follow(id);
  const table = document.querySelector("[data-refresh]");
  if (table) setInterval(() => location.reload(), 1000 * Number(table.dataset.refresh));
});
