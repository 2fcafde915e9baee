"""Generic standard methods (RFC 8620 §5) that every data type gets by declaring itself."""

from jmap.standard.datatype import DataType, Filter, ModelDataType, Prop, SetContext, Sort
from jmap.standard.register import register_standard_methods

__all__ = ["DataType", "Filter", "ModelDataType", "Prop", "SetContext", "Sort", "register_standard_methods"]
