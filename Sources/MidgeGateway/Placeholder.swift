import MQTTCodec
import CZlib
