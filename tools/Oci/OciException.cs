using ModelCar.Common;

namespace ModelCar.Oci;

/// <summary>A failure of the OCI model, layout or archive code (never names a CLI flag).</summary>
public class OciException(string message, Exception? inner = null, bool transient = false) : ModelCarException(message, inner, transient)
{
}
