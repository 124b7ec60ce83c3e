namespace ModelCar.HuggingFace;

internal static class AssemblyMarker;
