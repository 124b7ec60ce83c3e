namespace ModelCar.Registry.Auth;

/// <summary>Registry credentials: user + password, or an identity (refresh) token for the token flow.</summary>
public sealed record Credential(string Username, string Password, string? IdentityToken = null)
{
    public string BasicHeaderValue => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{Username}:{Password}"));

    /// <summary>Registers the password, the token and the Basic header value as secrets for redaction.</summary>
    public Credential Registered()
    {
        ModelCar.Common.Logging.Redactor.AddSecret(Password);
        ModelCar.Common.Logging.Redactor.AddSecret(IdentityToken);
        ModelCar.Common.Logging.Redactor.AddSecret(BasicHeaderValue);
        return this;
    }

    public override string ToString() => $"Credential({Username}, ***)";
}

/// <summary>
/// Where credentials for a registry come from. <see cref="Get"/> is called once per registry host and
/// repository; <see cref="Refresh"/> after a 401 in the middle of a push (a rotated token file).
/// </summary>
public interface ICredentialProvider
{
    Credential? Get(string registry, string repository);

    /// <summary>Reads the credentials again (password files are re-read); null if nothing can change.</summary>
    Credential? Refresh(string registry, string repository);
}

/// <summary>Credentials given on the command line: --creds USER:PASS or --username + --password-file (re-read on refresh).</summary>
public sealed class ExplicitCredentialProvider : ICredentialProvider
{
    private readonly string _username;
    private readonly string? _password;
    private readonly string? _passwordFile;

    public ExplicitCredentialProvider(string username, string? password, string? passwordFile)
    {
        _username = username;
        _password = password;
        _passwordFile = passwordFile;
        if (password is not null)
        {
            ModelCar.Common.Logging.Redactor.AddSecret(password);
        }
    }

    public Credential? Get(string registry, string repository) =>
        new Credential(_username, _password ?? ModelCar.Common.IO.SecretFile.Read(_passwordFile!, "password")).Registered();

    public Credential? Refresh(string registry, string repository) => _passwordFile is null ? null : Get(registry, repository);
}

/// <summary>
/// Credentials per registry host: a host in <paramref name="perHost"/> (matched exactly, HOST or
/// HOST:PORT, case-insensitive) uses its own provider; every other host the fallback.
/// </summary>
public sealed class PerHostCredentialProvider(IReadOnlyDictionary<string, ICredentialProvider> perHost, ICredentialProvider fallback) : ICredentialProvider
{
    private readonly Dictionary<string, ICredentialProvider> _perHost = new(perHost, StringComparer.OrdinalIgnoreCase);

    public IReadOnlyCollection<string> Hosts => _perHost.Keys;

    public ICredentialProvider For(string registry) => _perHost.TryGetValue(registry, out var p) ? p : fallback;

    public Credential? Get(string registry, string repository) => For(registry).Get(registry, repository);

    public Credential? Refresh(string registry, string repository) => For(registry).Refresh(registry, repository);
}

/// <summary>Per-registry credentials HOST=USER:PASSWORD_FILE (split at the first '=', then the first ':').</summary>
public sealed record LoginSpec(string Host, string Username, string PasswordFile)
{
    /// <exception cref="FormatException">Not HOST=USER:PASSWORD_FILE.</exception>
    public static LoginSpec Parse(string text)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0)
        {
            throw new FormatException("is not HOST=USER:PASSWORD_FILE");
        }
        var host = AuthFileLookup.NormalizeKey(text[..eq]);
        var rest = text[(eq + 1)..];
        int colon = rest.IndexOf(':');
        if (host.Length == 0 || host.Contains('/') || colon <= 0 || colon == rest.Length - 1)
        {
            throw new FormatException("is not HOST[:PORT]=USER:PASSWORD_FILE (a host without a path, a user name, a file)");
        }
        return new LoginSpec(host, rest[..colon], rest[(colon + 1)..]);
    }

    public override string ToString() => $"{Host}={Username}:{PasswordFile}";
}
