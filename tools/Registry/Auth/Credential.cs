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
