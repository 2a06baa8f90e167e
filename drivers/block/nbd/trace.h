/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the nbd driver, trace system "nbd".
 *
 * nbd_send_request, nbd_header_sent, nbd_payload_sent,
 * nbd_header_received and nbd_payload_received have the names, fields
 * and arguments of upstream's include/trace/events/nbd.h, so that perf,
 * bpftrace and BPF programs written for the stock module work here too
 * (nbd_send_request is writable, as upstream's, where the kernel has
 * writable tracepoints).  The others are this driver's own: structured
 * reply chunks and holes, protocol violations, requeues, reconnects.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM nbd

#if !defined(_NBD_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _NBD_TRACE_H

#include <linux/blk-mq.h>
#include <linux/tracepoint.h>

DECLARE_EVENT_CLASS(nbd_transport_event,
	TP_PROTO(struct request *req, u64 handle),
	TP_ARGS(req, handle),
	TP_STRUCT__entry(
		__field(struct request *, req)
		__field(u64, handle)
	),
	TP_fast_assign(
		__entry->req = req;
		__entry->handle = handle;
	),
	TP_printk("nbd transport event: request %p, handle 0x%016llx",
		  __entry->req, __entry->handle)
);

/* A request's header is on the wire (with a write's data, if any). */
DEFINE_EVENT(nbd_transport_event, nbd_header_sent,
	TP_PROTO(struct request *req, u64 handle),
	TP_ARGS(req, handle)
);

/* A write's data is on the wire. */
DEFINE_EVENT(nbd_transport_event, nbd_payload_sent,
	TP_PROTO(struct request *req, u64 handle),
	TP_ARGS(req, handle)
);

/* A reply header (or chunk header) was matched to its request. */
DEFINE_EVENT(nbd_transport_event, nbd_header_received,
	TP_PROTO(struct request *req, u64 handle),
	TP_ARGS(req, handle)
);

/* A read's data is in, all of it. */
DEFINE_EVENT(nbd_transport_event, nbd_payload_received,
	TP_PROTO(struct request *req, u64 handle),
	TP_ARGS(req, handle)
);

DECLARE_EVENT_CLASS(nbd_send_request,
	TP_PROTO(struct nbd_request *nbd_request, int index,
		 struct request *rq),
	TP_ARGS(nbd_request, index, rq),
	TP_STRUCT__entry(
		__field(struct nbd_request *, nbd_request)
		__field(u64, dev_index)
		__field(struct request *, request)
	),
	TP_fast_assign(
		/* the header's address is for writable programs only */
		__entry->nbd_request = NULL;
		__entry->dev_index = index;
		__entry->request = rq;
	),
	TP_printk("nbd%lld: request %p", __entry->dev_index, __entry->request)
);

#ifdef DEFINE_EVENT_WRITABLE
#undef NBD_DEFINE_EVENT
#define NBD_DEFINE_EVENT(template, call, proto, args, size)		\
	DEFINE_EVENT_WRITABLE(template, call, PARAMS(proto),		\
			      PARAMS(args), size)
#else
#undef NBD_DEFINE_EVENT
#define NBD_DEFINE_EVENT(template, call, proto, args, size)		\
	DEFINE_EVENT(template, call, PARAMS(proto), PARAMS(args))
#endif

/* A request is about to be sent: its header may still be changed. */
NBD_DEFINE_EVENT(nbd_send_request, nbd_send_request,
	TP_PROTO(struct nbd_request *nbd_request, int index,
		 struct request *rq),
	TP_ARGS(nbd_request, index, rq),
	sizeof(struct nbd_request)
);

/* A structured reply chunk header was matched to its request. */
TRACE_EVENT(nbd_chunk,
	TP_PROTO(int index, unsigned int conn, u64 handle, u16 flags, u16 type,
		 u32 length),
	TP_ARGS(index, conn, handle, flags, type, length),
	TP_STRUCT__entry(
		__field(int, dev_index)
		__field(unsigned int, conn)
		__field(u64, handle)
		__field(u16, flags)
		__field(u16, type)
		__field(u32, length)
	),
	TP_fast_assign(
		__entry->dev_index = index;
		__entry->conn = conn;
		__entry->handle = handle;
		__entry->flags = flags;
		__entry->type = type;
		__entry->length = length;
	),
	TP_printk("nbd%d conn %u: handle 0x%016llx type %s flags %#x length %u",
		  __entry->dev_index, __entry->conn, __entry->handle,
		  __print_symbolic(__entry->type,
				   { 0, "NONE" }, { 1, "OFFSET_DATA" },
				   { 2, "OFFSET_HOLE" }, { 5, "BLOCK_STATUS" },
				   { 0x8001, "ERROR" },
				   { 0x8002, "ERROR_OFFSET" }),
		  __entry->flags, __entry->length)
);

/* A read's data chunk or hole, checked, lands at @offset. */
TRACE_EVENT(nbd_chunk_range,
	TP_PROTO(int index, u64 handle, bool hole, u64 offset, u32 length),
	TP_ARGS(index, handle, hole, offset, length),
	TP_STRUCT__entry(
		__field(int, dev_index)
		__field(u64, handle)
		__field(bool, hole)
		__field(u64, offset)
		__field(u32, length)
	),
	TP_fast_assign(
		__entry->dev_index = index;
		__entry->handle = handle;
		__entry->hole = hole;
		__entry->offset = offset;
		__entry->length = length;
	),
	TP_printk("nbd%d: handle 0x%016llx %s at %llu, %u bytes",
		  __entry->dev_index, __entry->handle,
		  __entry->hole ? "hole" : "data", __entry->offset,
		  __entry->length)
);

/*
 * The server broke the protocol: the connection is closed.  @state is
 * the receiver's (what it was reading), @type the last chunk type seen.
 */
TRACE_EVENT(nbd_protocol_violation,
	TP_PROTO(int index, unsigned int conn, unsigned int state, u16 type,
		 u64 handle),
	TP_ARGS(index, conn, state, type, handle),
	TP_STRUCT__entry(
		__field(int, dev_index)
		__field(unsigned int, conn)
		__field(unsigned int, state)
		__field(u16, type)
		__field(u64, handle)
	),
	TP_fast_assign(
		__entry->dev_index = index;
		__entry->conn = conn;
		__entry->state = state;
		__entry->type = type;
		__entry->handle = handle;
	),
	TP_printk("nbd%d conn %u: receiver state %u, chunk type %#x, handle 0x%016llx",
		  __entry->dev_index, __entry->conn, __entry->state,
		  __entry->type, __entry->handle)
);

/* A request is handed back to blk-mq, to go out again. */
TRACE_EVENT(nbd_requeue,
	TP_PROTO(int index, struct request *rq, u16 cmd_type, int status),
	TP_ARGS(index, rq, cmd_type, status),
	TP_STRUCT__entry(
		__field(int, dev_index)
		__field(struct request *, request)
		__field(u16, cmd_type)
		__field(int, status)
	),
	TP_fast_assign(
		__entry->dev_index = index;
		__entry->request = rq;
		__entry->cmd_type = cmd_type;
		__entry->status = status;
	),
	TP_printk("nbd%d: request %p (command %u) requeued, status %d",
		  __entry->dev_index, __entry->request, __entry->cmd_type,
		  __entry->status)
);

/* A dead connection got a new socket. */
TRACE_EVENT(nbd_reconnect,
	TP_PROTO(int index, unsigned int conn),
	TP_ARGS(index, conn),
	TP_STRUCT__entry(
		__field(int, dev_index)
		__field(unsigned int, conn)
	),
	TP_fast_assign(
		__entry->dev_index = index;
		__entry->conn = conn;
	),
	TP_printk("nbd%d: connection %u reconnected", __entry->dev_index,
		  __entry->conn)
);

#endif /* _NBD_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
