using Xunit;

namespace ModelCar.TestSupport;

/// <summary>
/// One real registry (CNCF distribution) with htpasswd Basic auth for a test class: the user and
/// password below; <see cref="Registry"/> is reached directly or behind a <see cref="FaultProxy"/>.
/// </summary>
public sealed class HtpasswdRegistryFixture : IAsyncLifetime
{
    public const string User = "pusher";
    public const string Password = "fault-test-pass-42";

    public RegistryContainer Registry { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Registry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = await Htpasswd(User, Password) }).StartAsync();

    public Task DisposeAsync() => Registry.DisposeAsync().AsTask();

    /// <summary>An htpasswd file's content (bcrypt, `htpasswd -Bbn`) for one user.</summary>
    public static async Task<string> Htpasswd(string user, string password)
    {
        var r = await PeerTools.RunAsync("htpasswd", ["-Bbn", user, password]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.StdOut.Trim() + "\n";
    }
}
