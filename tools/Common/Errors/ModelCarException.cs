namespace ModelCar.Common;

/// <summary>
/// The base of every library's own exceptions (one type per library: <c>OciException</c>,
/// <c>RegistryException</c>, <c>HubException</c>, <c>ModelRegistryException</c>,
/// <c>PackingException</c>; Common's own below). A ModelCarException is a decided failure: its
/// message is one line that says <em>what</em> is wrong, complete in itself (it never names a CLI
/// flag — the command that called the library adds which option to change, and maps the failure to
/// an exit code). It is never retried in-process (the library already spent the retries it was
/// given). <see cref="IsTransient"/> says whether a later run may succeed unchanged (the server or
/// network kept failing temporarily) or not (bad data, refused, missing). <see cref="IsInvalidInput"/>
/// marks a value the caller passed in that is malformed or contradicts what it names (a command maps
/// it to exit 2, bad usage). <see cref="Reason"/> is a typed case the caller can act on (each library
/// has its own enum: a missing credential, an untrusted certificate, a gated repo, …).
/// </summary>
public abstract class ModelCarException : Exception
{
    protected ModelCarException(string message, Exception? inner = null, bool transient = false, Enum? reason = null)
        : base(message, inner)
    {
        IsTransient = transient;
        Reason = reason;
    }

    /// <summary>True when a later run may well succeed (temporary server/network trouble outlasted the retries).</summary>
    public bool IsTransient { get; }

    /// <summary>True when the failure is bad input given by the caller (exit 2 in the tools).</summary>
    public virtual bool IsInvalidInput => false;

    /// <summary>The typed case, when the library knows one the caller can act on; null otherwise.</summary>
    public Enum? Reason { get; }

    /// <summary>
    /// The decided failure inside <paramref name="e"/>: the first ModelCarException in its chain (itself, then its inner
    /// exceptions), or null. The one rule for "is there a real cause under this HTTP/IO failure": such a cause is
    /// reported as it is and never retried (<c>HttpRetry.IsTransient</c>, the registry blob writer).
    /// </summary>
    public static ModelCarException? Find(Exception? e) => Find<ModelCarException>(e);

    /// <summary>The first <typeparamref name="T"/> in the chain of <paramref name="e"/> (itself, then its inner exceptions).</summary>
    public static T? Find<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is T t)
            {
                return t;
            }
        }
        return null;
    }

    /// <summary>The first exception in the chain carrying <paramref name="reason"/>.</summary>
    public static ModelCarException? FindReason(Exception? e, Enum reason)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is ModelCarException { Reason: { } r } m && r.Equals(reason))
            {
                return m;
            }
        }
        return null;
    }
}

/// <summary>A file the caller named (a secret, a CA bundle) is missing, unreadable, empty or not what it should be.</summary>
public sealed class InputFileException(string message, Exception? inner = null) : ModelCarException(message, inner)
{
}
