using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;

namespace ModelCar.TestSupport;

/// <summary>Files and settings for one registry container (CNCF distribution).</summary>
public sealed record RegistryContainerOptions
{
    /// <summary>htpasswd file content (bcrypt entries, `htpasswd -Bbn user pass`): enables Basic auth.</summary>
    public string? Htpasswd { get; init; }

    /// <summary>TLS certificate and key (PEM): the registry serves https.</summary>
    public (string CertPem, string KeyPem)? Tls { get; init; }

    /// <summary>Token auth: realm URL (reachable from the host), service, issuer, root cert bundle (PEM).</summary>
    public (string Realm, string Service, string Issuer, string RootCertBundlePem)? TokenAuth { get; init; }

    public IReadOnlyDictionary<string, string> ExtraEnvironment { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A real registry in a container via Testcontainers. The image is MODELCAR_TEST_REGISTRY_IMAGE
/// (our CI builds a local FROM-scratch image from Debian's docker-registry), else the public
/// registry:2 (a laptop with Docker). If no engine answers, starting fails: tests never skip.
/// </summary>
public sealed class RegistryContainer : IAsyncDisposable
{
    private readonly IContainer _container;

    public RegistryContainer(RegistryContainerOptions? options = null)
    {
        options ??= new RegistryContainerOptions();
        var image = Environment.GetEnvironmentVariable("MODELCAR_TEST_REGISTRY_IMAGE") is { Length: > 0 } i ? i : "registry:2";
        var builder = new ContainerBuilder(image)
            .WithPortBinding(5000, assignRandomHostPort: true)
            .WithEnvironment("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .WithWaitStrategy(Wait.ForUnixContainer().UntilMessageIsLogged("listening on"));
        if (options.Htpasswd is { } htpasswd)
        {
            builder = builder
                .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(htpasswd), "/auth/htpasswd")
                .WithEnvironment("REGISTRY_AUTH", "htpasswd")
                .WithEnvironment("REGISTRY_AUTH_HTPASSWD_REALM", "modelcar-test")
                .WithEnvironment("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd");
        }
        if (options.Tls is { } tls)
        {
            builder = builder
                .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(tls.CertPem), "/certs/tls.crt")
                .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(tls.KeyPem), "/certs/tls.key")
                .WithEnvironment("REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/tls.crt")
                .WithEnvironment("REGISTRY_HTTP_TLS_KEY", "/certs/tls.key");
            UsesTls = true;
        }
        if (options.TokenAuth is { } token)
        {
            builder = builder
                .WithResourceMapping(System.Text.Encoding.UTF8.GetBytes(token.RootCertBundlePem), "/auth/token-ca.pem")
                .WithEnvironment("REGISTRY_AUTH", "token")
                .WithEnvironment("REGISTRY_AUTH_TOKEN_REALM", token.Realm)
                .WithEnvironment("REGISTRY_AUTH_TOKEN_SERVICE", token.Service)
                .WithEnvironment("REGISTRY_AUTH_TOKEN_ISSUER", token.Issuer)
                .WithEnvironment("REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE", "/auth/token-ca.pem");
        }
        foreach (var (k, v) in options.ExtraEnvironment)
        {
            builder = builder.WithEnvironment(k, v);
        }
        _container = builder.Build();
    }

    public bool UsesTls { get; }

    /// <summary>127.0.0.1:PORT as the tools should address it.</summary>
    public string HostPort => $"{_container.Hostname}:{_container.GetMappedPublicPort(5000)}";

    public Uri BaseUri => new($"{(UsesTls ? "https" : "http")}://{HostPort}/");

    public IContainer Container => _container;

    public async Task<RegistryContainer> StartAsync(CancellationToken ct = default)
    {
        await _container.StartAsync(ct);
        return this;
    }

    public async Task<string> LogsAsync()
    {
        var (stdout, stderr) = await _container.GetLogsAsync();
        return stdout + stderr;
    }

    public ValueTask DisposeAsync() => _container.DisposeAsync();
}

/// <summary>One plain registry shared by a test class (xunit IClassFixture / collection fixture).</summary>
public sealed class SharedRegistryFixture : Xunit.IAsyncLifetime
{
    public RegistryContainer Registry { get; } = new();

    public Task InitializeAsync() => Registry.StartAsync();

    public Task DisposeAsync() => Registry.DisposeAsync().AsTask();
}
