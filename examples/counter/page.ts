// The seed's live counter client, wired to the page's buttons.
import { createClient } from "chatter";
import { GET_COUNT, UPDATE_COUNT } from "./procedures";

const chatter = createClient({
  url: location.origin.replace(/^http/, "ws"),
});

const countEl = document.querySelector<HTMLOutputElement>('[data-testid="count"]')!;
const stateEl = document.querySelector<HTMLElement>('[data-testid="state"]')!;
let currentValue = 0;

function render() {
  countEl.textContent = String(currentValue);
}

// The server broadcasts other people's changes to us.
chatter.on(UPDATE_COUNT, (amount) => {
  currentValue += amount;
  render();
});

chatter.onStateChange(async (state) => {
  stateEl.textContent = state;
  stateEl.dataset.state = state;
  // Load the current value whenever we (re)connect.
  if (chatter.isConnected) {
    currentValue = await chatter.call(GET_COUNT);
    render();
  }
});

async function update(amount: number) {
  currentValue = await chatter.call(UPDATE_COUNT, amount);
  render();
}

document.querySelector('[data-testid="increment"]')!.addEventListener("click", () => update(1));
document.querySelector('[data-testid="decrement"]')!.addEventListener("click", () => update(-1));
