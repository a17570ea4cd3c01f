// Pieces every view uses: the error box (code, reason, message; a way to sign in again) and sign-out.
import { html } from "htm/preact";
import type { ShownError } from "./api.js";

let signOutHandler: (notice: string) => void = () => {};
export const setSignOut = (fn: (notice: string) => void) => {
  signOutHandler = fn;
};
export const signOut = (notice: string) => signOutHandler(notice);

export function ErrorBox(props: { error: ShownError | null }) {
  const e = props.error;
  if (!e) return null;
  return html`<div class="error" role="alert">
    <strong>${e.code}</strong>${e.reason ? html` <code>${e.reason}</code>` : null}: ${e.message}
    ${
      e.credential
        ? html`<p>${e.code === "PERMISSION_DENIED" ? "Your credential lacks the scope this needs." : "Your credential was refused (expired, revoked or unknown)."}
          <button type="button" onClick=${() => signOut(e.code === "PERMISSION_DENIED" ? "Sign in with a credential that has the needed scope." : "Your credential was refused: sign in again.")}>Sign in again</button></p>`
        : null
    }
  </div>`;
}
