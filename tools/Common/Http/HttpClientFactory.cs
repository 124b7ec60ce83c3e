using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace ModelCar.Common.Http;

/// <summary>
/// One SocketsHttpHandler-based client per tool run: 30 s connect timeout, no total timeout
/// (multi-GB bodies are guarded by stall timeouts instead), no automatic redirects (callers
/// follow them by hand so credentials never go to another host), TLS verified unless disabled.
/// </summary>
public static class HttpClientFactory
{
    public static HttpClient Create(HttpSettings settings, HttpMessageHandler? innerForTests = null)
    {
        HttpMessageHandler handler = innerForTests ?? CreateHandler(settings);
        var client = new HttpClient(handler, disposeHandler: true)
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        client.DefaultRequestHeaders.UserAgent.ParseAdd(settings.UserAgent);
        return client;
    }

    public static SocketsHttpHandler CreateHandler(HttpSettings settings)
    {
        var roots = LoadCaFiles(settings.CaFiles);
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = settings.ConnectTimeout,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            MaxConnectionsPerServer = 64,
            UseCookies = false,
            SslOptions = new SslClientAuthenticationOptions(),
        };
        if (!settings.TlsVerify)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
        }
        else if (roots.Count > 0)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => Validate(cert, errors, roots);
        }
        return handler;
    }

    private static bool Validate(X509Certificate? cert, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }
        if (cert is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(cert);
        return chain.Build(leaf);
    }

    private static X509Certificate2Collection LoadCaFiles(IReadOnlyList<string> files)
    {
        var roots = new X509Certificate2Collection();
        foreach (var file in files)
        {
            try
            {
                roots.ImportFromPemFile(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new InputFileException($"CA file '{file}' could not be read: {e.Message}");
            }
        }
        if (files.Count > 0 && roots.Count == 0)
        {
            throw new InputFileException($"CA file '{files[0]}' holds no PEM certificate");
        }
        return roots;
    }
}
