namespace ModelCar.Common.Cli;

/// <summary>Makes the process work as an arbitrary UID without a home (OpenShift restricted-v2).</summary>
public static class ProcessEnvironment
{
    /// <summary>
    /// Where HOME points when it is unset and the UID has no passwd entry: a directory that does not
    /// exist, so nothing can be read from or written to it.
    /// </summary>
    public const string NoHome = "/nonexistent";

    /// <summary>
    /// .NET's X509 chain building on Linux looks into the current user's certificate stores under
    /// $HOME/.dotnet/corefx/cryptography and throws "The home directory of the current user could not
    /// be determined" when HOME is unset and the UID has no passwd entry — every TLS connection would
    /// fail. Give the process a HOME in that case (the passwd home if there is one, else
    /// <see cref="NoHome"/>); the tools never write there (only to the paths they are given).
    /// </summary>
    public static void EnsureHome(Func<string, string?>? getEnv = null, Action<string, string>? setEnv = null, Func<string?>? passwdHome = null)
    {
        getEnv ??= Environment.GetEnvironmentVariable;
        setEnv ??= Environment.SetEnvironmentVariable;
        if (!string.IsNullOrEmpty(getEnv("HOME")))
        {
            return;
        }
        string? home;
        try
        {
            home = (passwdHome ?? (() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile)))();
        }
        catch (Exception e) when (e is InvalidOperationException or PlatformNotSupportedException)
        {
            home = null;
        }
        setEnv("HOME", string.IsNullOrEmpty(home) ? NoHome : home);
    }
}
