// SPDX-License-Identifier: GPL-2.0
/*
 * nbdctl: the "nbd" generic netlink family, through libnl-genl-3.
 *
 * Every request is sent with an ACK requested and extended ACKs turned on,
 * so that a refusal comes back with the errno and, from a kernel that
 * sets one, a message naming the reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <linux/nbd-netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "nbdctl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* One request's outcome, filled by the callbacks. */
struct nl_reply {
	bool done;
	int error;			/* 0 or a negative errno */
	char msg[256];			/* extended ACK message, if any */
	int (*parse)(struct nl_msg *msg, void *arg);
	void *arg;
};

int nbdnl_open(struct nbdnl *nl, char *err, size_t errlen)
{
	int one = 1;
	int ret;

	memset(nl, 0, sizeof(*nl));
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = genl_connect(nl->sk);
	if (ret < 0) {
		snprintf(err, errlen, "cannot open a generic netlink socket: %s",
			 nl_geterror(ret));
		goto fail;
	}
	/* Ask for the kernel's reason with every error. */
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK,
		   &one, sizeof(one));

	/* Resolving the family makes the kernel load nbd if it can. */
	nl->family = genl_ctrl_resolve(nl->sk, NBD_GENL_FAMILY_NAME);
	if (nl->family < 0) {
		snprintf(err, errlen,
			 "the kernel has no \"%s\" netlink family: the nbd module is not loaded (run 'modprobe nbd' as root; it needs the nbd.ko of this kernel, e.g. from 'make install')",
			 NBD_GENL_FAMILY_NAME);
		ret = -ENOENT;
		goto fail;
	}
	return 0;
fail:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return ret;
}

void nbdnl_close(struct nbdnl *nl)
{
	if (nl->sk)
		nl_socket_free(nl->sk);
	nl->sk = NULL;
}

int nbdnl_fd(struct nbdnl *nl)
{
	return nl_socket_get_fd(nl->sk);
}

/* The extended ACK's message attribute, if the kernel sent one. */
static void ext_ack_msg(struct nlmsghdr *nlh, struct nlmsgerr *e,
			char *buf, size_t len)
{
	size_t off = NLMSG_HDRLEN + sizeof(*e);
	struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	/* Without NLM_F_CAPPED the request itself follows the header. */
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
	while (off + NLA_HDRLEN <= nlh->nlmsg_len) {
		a = (struct nlattr *)((char *)nlh + off);
		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > nlh->nlmsg_len)
			return;
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG &&
		    a->nla_len > NLA_HDRLEN) {
			snprintf(buf, len, "%.*s", (int)(a->nla_len - NLA_HDRLEN),
				 (char *)a + NLA_HDRLEN);
			return;
		}
		off += NLA_ALIGN(a->nla_len);
	}
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nl_reply *r = arg;
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);

	r->error = e->error;
	ext_ack_msg(nlh, e, r->msg, sizeof(r->msg));
	r->done = true;
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct nl_reply *r = arg;

	r->done = true;
	return NL_STOP;
}

static int on_valid_noop(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct nl_reply *r = arg;

	if (r->parse)
		return r->parse(msg, r->arg);
	return NL_OK;
}

/*
 * Send @msg (consumed) and read until the ACK or an error.  Returns 0 or
 * a negative errno; @r->msg has the kernel's message, if any.
 */
static int nl_transact(struct nbdnl *nl, struct nl_msg *msg,
		       struct nl_reply *r)
{
	struct nl_cb *cb;
	int ret;

	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, r);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, r);

	ret = nl_send_auto(nl->sk, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		nl_cb_put(cb);
		snprintf(r->msg, sizeof(r->msg), "%s", nl_geterror(ret));
		return -EIO;
	}
	while (!r->done) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (ret < 0 && !r->done) {
			nl_cb_put(cb);
			snprintf(r->msg, sizeof(r->msg), "%s", nl_geterror(ret));
			return -EIO;
		}
	}
	nl_cb_put(cb);
	return r->error;
}

static struct nl_msg *nbd_msg(struct nbdnl *nl, int cmd)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, 0,
			 cmd, NBD_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* This driver's own attributes (see linux/nbd-netlink.h). */
static int put_ext(struct nl_msg *msg, const struct nbdnl_params *p)
{
	struct nlattr *ext = nla_nest_start(msg, NBD_ATTR_EXT);

	if (!ext || nla_put_u32(msg, NBD_EXT_MAGIC, NBD_EXT_MAGIC_VALUE) ||
	    nla_put_u32(msg, NBD_EXT_REPLY_MODE,
			p->structured ? NBD_EXT_REPLY_STRUCTURED :
					NBD_EXT_REPLY_SIMPLE))
		return -1;
	if (p->have_blocks &&
	    (nla_put_u32(msg, NBD_EXT_BLOCK_MIN, p->min_block) ||
	     nla_put_u32(msg, NBD_EXT_BLOCK_PREF, p->pref_block) ||
	     nla_put_u32(msg, NBD_EXT_BLOCK_MAX, p->max_block)))
		return -1;
	nla_nest_end(msg, ext);
	return 0;
}

/* The parameters CONNECT and RECONFIGURE share. */
static int put_params(struct nl_msg *msg, const struct nbdnl_params *p)
{
	struct nlattr *socks, *item;
	int i;

	if (p->index >= 0 && nla_put_u32(msg, NBD_ATTR_INDEX, p->index))
		return -1;
	if (p->size && nla_put_u64(msg, NBD_ATTR_SIZE_BYTES, p->size))
		return -1;
	if (p->block_size &&
	    nla_put_u64(msg, NBD_ATTR_BLOCK_SIZE_BYTES, p->block_size))
		return -1;
	if (p->set_timeout && nla_put_u64(msg, NBD_ATTR_TIMEOUT, p->timeout))
		return -1;
	if (p->set_dead_timeout &&
	    nla_put_u64(msg, NBD_ATTR_DEAD_CONN_TIMEOUT, p->dead_timeout))
		return -1;
	if (p->set_server_flags &&
	    nla_put_u64(msg, NBD_ATTR_SERVER_FLAGS, p->server_flags))
		return -1;
	if (p->set_client_flags &&
	    nla_put_u64(msg, NBD_ATTR_CLIENT_FLAGS, p->client_flags))
		return -1;
	if (p->backend && nla_put_string(msg, NBD_ATTR_BACKEND_IDENTIFIER,
					 p->backend))
		return -1;
	if (p->ext && put_ext(msg, p))
		return -1;
	if (!p->nfds)
		return 0;
	socks = nla_nest_start(msg, NBD_ATTR_SOCKETS);
	if (!socks)
		return -1;
	for (i = 0; i < p->nfds; i++) {
		item = nla_nest_start(msg, NBD_SOCK_ITEM);
		if (!item || nla_put_u32(msg, NBD_SOCK_FD, p->fds[i]))
			return -1;
		nla_nest_end(msg, item);
	}
	nla_nest_end(msg, socks);
	return 0;
}

static int parse_index(struct nl_msg *msg, void *arg)
{
	struct nlattr *a[NBD_ATTR_MAX + 1];
	int *index = arg;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, a, NBD_ATTR_MAX, NULL) < 0)
		return NL_SKIP;
	if (a[NBD_ATTR_INDEX])
		*index = nla_get_u32(a[NBD_ATTR_INDEX]);
	return NL_OK;
}

/* A request with parameters; the kernel's reason goes to @err. */
static int nl_request(struct nbdnl *nl, int cmd, const struct nbdnl_params *p,
		      int *index, char *err, size_t errlen)
{
	struct nl_reply r = { .parse = index ? parse_index : NULL,
			      .arg = index };
	struct nl_msg *msg;
	int ret;

	msg = nbd_msg(nl, cmd);
	if (!msg || put_params(msg, p)) {
		if (msg)
			nlmsg_free(msg);
		snprintf(err, errlen, "cannot build the netlink request");
		return -ENOMEM;
	}
	ret = nl_transact(nl, msg, &r);
	if (ret)
		snprintf(err, errlen, "%s", r.msg);
	return ret;
}

int nbdnl_connect(struct nbdnl *nl, const struct nbdnl_params *p, int *index,
		  char *err, size_t errlen)
{
	*index = -1;
	return nl_request(nl, NBD_CMD_CONNECT, p, index, err, errlen);
}

int nbdnl_reconfigure(struct nbdnl *nl, const struct nbdnl_params *p,
		      char *err, size_t errlen)
{
	return nl_request(nl, NBD_CMD_RECONFIGURE, p, NULL, err, errlen);
}

int nbdnl_disconnect(struct nbdnl *nl, int index, char *err, size_t errlen)
{
	struct nbdnl_params p = { .index = index };

	return nl_request(nl, NBD_CMD_DISCONNECT, &p, NULL, err, errlen);
}

struct status_walk {
	int (*cb)(void *arg, int index, bool connected);
	void *arg;
	int ret;
};

static int parse_status(struct nl_msg *msg, void *arg)
{
	struct status_walk *w = arg;
	struct nlattr *a[NBD_ATTR_MAX + 1], *d[NBD_DEVICE_ATTR_MAX + 1];
	struct nlattr *item;
	int rem;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, a, NBD_ATTR_MAX, NULL) < 0 ||
	    !a[NBD_ATTR_DEVICE_LIST])
		return NL_SKIP;
	nla_for_each_nested(item, a[NBD_ATTR_DEVICE_LIST], rem) {
		if (nla_type(item) != NBD_DEVICE_ITEM)
			continue;
		if (nla_parse_nested(d, NBD_DEVICE_ATTR_MAX, item, NULL) < 0 ||
		    !d[NBD_DEVICE_INDEX])
			continue;
		if (w->ret)
			continue;
		w->ret = w->cb(w->arg, nla_get_u32(d[NBD_DEVICE_INDEX]),
			       d[NBD_DEVICE_CONNECTED] &&
			       nla_get_u8(d[NBD_DEVICE_CONNECTED]));
	}
	return NL_OK;
}

int nbdnl_status(struct nbdnl *nl, int index,
		 int (*cb)(void *arg, int index, bool connected), void *arg,
		 char *err, size_t errlen)
{
	struct status_walk w = { .cb = cb, .arg = arg };
	struct nl_reply r = { .parse = parse_status, .arg = &w };
	struct nl_msg *msg;
	int ret;

	msg = nbd_msg(nl, NBD_CMD_STATUS);
	if (!msg || (index >= 0 && nla_put_u32(msg, NBD_ATTR_INDEX, index))) {
		if (msg)
			nlmsg_free(msg);
		snprintf(err, errlen, "cannot build the netlink request");
		return -ENOMEM;
	}
	ret = nl_transact(nl, msg, &r);
	if (ret) {
		snprintf(err, errlen, "%s", r.msg);
		return ret;
	}
	return w.ret;
}

struct features_walk {
	uint64_t features;
	char *version;
	size_t versionlen;
};

/*
 * NBD_ATTR_EXT lies far above NBD_ATTR_MAX: look for it among the
 * reply's attributes rather than parse into a table that large.
 */
static int parse_features(struct nl_msg *msg, void *arg)
{
	struct features_walk *w = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *ext, *magic, *a;

	ext = nla_find(genlmsg_attrdata(nlmsg_data(nlh), 0),
		       genlmsg_attrlen(nlmsg_data(nlh), 0), NBD_ATTR_EXT);
	if (!ext)
		return NL_OK;
	magic = nla_find(nla_data(ext), nla_len(ext), NBD_EXT_MAGIC);
	if (!magic || nla_len(magic) != 4 ||
	    nla_get_u32(magic) != NBD_EXT_MAGIC_VALUE)
		return NL_OK;
	a = nla_find(nla_data(ext), nla_len(ext), NBD_EXT_FEATURES);
	if (a && nla_len(a) == 8)
		w->features = nla_get_u64(a);
	a = nla_find(nla_data(ext), nla_len(ext), NBD_EXT_VERSION);
	if (a && nla_len(a) > 0)
		snprintf(w->version, w->versionlen, "%.*s", nla_len(a),
			 (const char *)nla_data(a));
	return NL_OK;
}

int nbdnl_features(struct nbdnl *nl, uint64_t *features, char *version,
		   size_t versionlen, char *err, size_t errlen)
{
	struct features_walk w = { .version = version,
				   .versionlen = versionlen };
	struct nl_reply r = { .parse = parse_features, .arg = &w };
	struct nl_msg *msg;
	int ret;

	*features = 0;
	if (versionlen)
		version[0] = '\0';
	msg = nbd_msg(nl, NBD_CMD_STATUS);
	if (!msg) {
		snprintf(err, errlen, "cannot build the netlink request");
		return -ENOMEM;
	}
	ret = nl_transact(nl, msg, &r);
	if (ret) {
		snprintf(err, errlen, "%s", r.msg);
		return ret;
	}
	*features = w.features;
	return 0;
}

/* --- LINK_DEAD notifications ------------------------------------------ */

struct watch_state {
	int (*cb)(void *arg, int index);
	void *arg;
	int ret;
};

static int parse_event(struct nl_msg *msg, void *arg)
{
	struct watch_state *w = arg;
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *a[NBD_ATTR_MAX + 1];

	if (g->cmd != NBD_CMD_LINK_DEAD)
		return NL_SKIP;
	if (genlmsg_parse(nlmsg_hdr(msg), 0, a, NBD_ATTR_MAX, NULL) < 0 ||
	    !a[NBD_ATTR_INDEX])
		return NL_SKIP;
	w->ret = w->cb(w->arg, nla_get_u32(a[NBD_ATTR_INDEX]));
	return w->ret ? NL_STOP : NL_OK;
}

int nbdnl_subscribe(struct nbdnl *nl, char *err, size_t errlen)
{
	int grp, ret;

	grp = genl_ctrl_resolve_grp(nl->sk, NBD_GENL_FAMILY_NAME,
				    NBD_GENL_MCAST_GROUP_NAME);
	if (grp < 0) {
		snprintf(err, errlen,
			 "the nbd module has no \"%s\" multicast group: %s",
			 NBD_GENL_MCAST_GROUP_NAME, nl_geterror(grp));
		return -ENOENT;
	}
	/* Notifications carry no sequence number. */
	nl_socket_disable_seq_check(nl->sk);
	ret = nl_socket_add_membership(nl->sk, grp);
	if (ret < 0) {
		snprintf(err, errlen, "cannot join the nbd multicast group: %s",
			 nl_geterror(ret));
		return -EIO;
	}
	return 0;
}

int nbdnl_read_events(struct nbdnl *nl, int (*cb)(void *arg, int index),
		      void *arg, char *err, size_t errlen)
{
	struct watch_state w = { .cb = cb, .arg = arg };
	struct nl_cb *c;
	int ret;

	c = nl_cb_alloc(NL_CB_DEFAULT);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	nl_cb_set(c, NL_CB_VALID, NL_CB_CUSTOM, parse_event, &w);
	nl_cb_set(c, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_valid_noop, NULL);
	ret = nl_recvmsgs(nl->sk, c);
	nl_cb_put(c);
	if (ret < 0 && !w.ret) {
		/* Missed notifications: the caller re-checks its devices. */
		if (ret == -NLE_NOMEM)
			return -ENOBUFS;
		snprintf(err, errlen, "reading netlink notifications: %s",
			 nl_geterror(ret));
		return -EIO;
	}
	return w.ret;
}
