// The live counter again, with chatter/react's hooks. Served at /react by server.ts.
import { createClient } from "chatter";
import { ChatterProvider, useConnectionState, useHandler, useProc } from "chatter/react";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { GET_COUNT, UPDATE_COUNT } from "./procedures";

const client = createClient({ url: location.origin.replace(/^http/, "ws") });

function Counter() {
  const [count, setCount] = useState<number | null>(null);
  const { state, isConnected, resets } = useConnectionState();
  const get = useProc(GET_COUNT);
  const update = useProc(UPDATE_COUNT);
  // Other people's changes arrive as broadcasts.
  useHandler(UPDATE_COUNT, (amount) => setCount((c) => (c ?? 0) + amount));
  // Load the count on every connect, and again after a session reset.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `resets` is the trigger, not a value the effect reads
  useEffect(() => {
    if (isConnected) get.call().then(setCount, () => {});
  }, [isConnected, resets, get.call]);
  const change = (amount: number) => update.call(amount).then(setCount, () => {});
  return (
    <main>
      <h1>Live counter (React)</h1>
      <output data-testid="count">{count ?? "…"}</output>
      <button type="button" data-testid="decrement" aria-label="Subtract one" onClick={() => change(-1)}>
        −
      </button>
      <button type="button" data-testid="increment" aria-label="Add one" onClick={() => change(1)}>
        +
      </button>
      <p id="state" data-testid="state" data-state={state}>
        {state}
      </p>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <ChatterProvider client={client}>
    <Counter />
  </ChatterProvider>,
);
