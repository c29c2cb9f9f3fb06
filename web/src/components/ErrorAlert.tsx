/** An error from the server (or the network), announced by screen readers when it appears. */
export function ErrorAlert({ message }: { message: string | null | undefined }) {
  if (!message) return null;
  return (
    <div role="alert" className="alert">
      {message}
    </div>
  );
}
